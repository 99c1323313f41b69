"""SIP transactions (RFC 3261 §17 with RFC 6026), sans-I/O.

:class:`TransactionLayer` is the entry point: feed it parsed messages, transport errors and
timer expiries with an explicit ``now``; drain its outputs (events for the TU and
:class:`SendMessage` actions) with ``next_event()`` / ``events()``; arm one timer at
``get_timer()``. The four state machines are explicit tables in :mod:`.client` and
:mod:`.server`.
"""

from .client import ClientTransaction, ICTState, NICTState
from .events import (
    AckReceived,
    CancelReceived,
    Event,
    Output,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .key import MAGIC_COOKIE, is_rfc3261_branch
from .layer import TransactionLayer
from .server import ISTState, NISTState, ServerTransaction
from .timers import Timer, TimerConfig

__all__ = [
    "MAGIC_COOKIE",
    "AckReceived",
    "CancelReceived",
    "ClientTransaction",
    "Event",
    "ICTState",
    "ISTState",
    "NICTState",
    "NISTState",
    "Output",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "ServerTransaction",
    "StrayResponseReceived",
    "Timer",
    "TimerConfig",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
    "is_rfc3261_branch",
]
