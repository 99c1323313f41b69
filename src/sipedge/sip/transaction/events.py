"""What the transaction layer hands back: events for the TU and messages to send.

Every output is a frozen, slotted dataclass named as a fact (ARCHITECTURE.md §4.3). The layer
queues them in the order they happen; the caller drains the queue with
:meth:`TransactionLayer.next_event` or :meth:`TransactionLayer.events` after each input.

``dest`` and ``source`` are opaque objects the caller supplied (a flow, an address): the
transaction layer stores and returns them and never looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from .timers import Timer

if TYPE_CHECKING:
    from ..message import Request, Response
    from .client import ClientTransaction
    from .server import ServerTransaction

    Transaction: TypeAlias = ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send ``data`` to ``dest`` (the destination given with the transaction or message)."""

    data: bytes
    dest: object


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request that matches no server transaction (RFC 3261 §17.2.3).

    The TU creates a server transaction for it with
    :meth:`TransactionLayer.create_server_transaction` (or handles it statelessly). It must do
    so before feeding the next message, else a retransmission is reported again.
    """

    request: Request
    source: object


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx: a request of its own for the TU (RFC 3261 §17.1.1.3, §16.7).

    ``transaction`` is the INVITE server transaction it matched in the "Accepted" state
    (RFC 6026 §7.1: "ACK / to TU"), or None when it matched none, the usual case since a
    2xx ACK carries a new branch.
    """

    request: Request
    source: object
    transaction: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL that matches no server transaction yet (RFC 3261 §9.2).

    ``invite`` is the server transaction the CANCEL targets (found with the CANCEL's own
    matching keys as if it were the request it cancels), or None. The TU creates a server
    transaction for the CANCEL itself to answer it (200, or 481 when ``invite`` is None).
    """

    request: Request
    source: object
    invite: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction, to be handled by the TU (RFC 3261 §17.1).

    Every 1xx, the first final response and, for INVITE, every 2xx (RFC 6026 §8.4: the
    proxy forwards every 2xx) are reported; other retransmissions are absorbed.
    """

    response: Response
    source: object
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponseReceived:
    """A response that matches no client transaction (RFC 3261 §17.1.3, §18.1.2).

    A stateful proxy forwards it statelessly (§16.7 step 2) or drops it.
    """

    response: Response
    source: object


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F (client: no final response) or H (server: no ACK) fired (§17.1, §17.2.1)."""

    transaction: Transaction
    timer: Timer


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The caller reported a transport error for the transaction (§17.1.4, §17.2.4)."""

    transaction: Transaction
    reason: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached "Terminated" and was removed from the layer."""

    transaction: Transaction


Event: TypeAlias = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponseReceived
    | TransactionTimedOut
    | TransportFailed
    | TransactionTerminated
)
Output: TypeAlias = Event | SendMessage
