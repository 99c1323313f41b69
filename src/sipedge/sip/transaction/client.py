"""Client transactions: INVITE (RFC 3261 §17.1.1 + RFC 6026) and non-INVITE (§17.1.2).

The two state tables below are the whole protocol logic; :class:`ClientTransaction` only
turns their actions into outputs (messages to send, events for the TU).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..build import build_ack
from ..errors import ProtocolError
from .events import (
    Output,
    ResponseReceived,
    SendMessage,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .key import ClientKey
from .machine import Machine, MachineSpec, in_states
from .summary import RequestSummary
from .timers import FastEnum, Timer, TimerConfig

if TYPE_CHECKING:
    from ..message import Request, Response


class ICTState(FastEnum):
    """INVITE client transaction states (RFC 3261 Figure 5, RFC 6026 Figure 5)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class NICTState(FastEnum):
    """Non-INVITE client transaction states (RFC 3261 Figure 6)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ClientInput(FastEnum):
    """What can happen to a client transaction."""

    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_K = "Timer K"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"
    ABANDON = "TU abandons"


class ClientAction(FastEnum):
    """What the transaction does on a transition."""

    RETRANSMIT = "send the request again"
    REPORT = "pass the response to the TU"
    REPORT_AND_ACK = "send an ACK, pass the response to the TU"
    RESEND_ACK = "send the ACK again"
    ABSORB = "nothing (retransmission absorbed)"
    TIME_OUT = "tell the TU the transaction timed out"
    FAIL_TRANSPORT = "tell the TU the transport failed"
    END = "nothing (quiet end)"


_C, _In, _Act = ICTState, ClientInput, ClientAction

# INVITE client transaction, RFC 3261 §17.1.1 as amended by RFC 6026 §7.2 and §8.4.
# "Calling": the INVITE was sent; Timer A retransmits it on unreliable transports (T1, 2*T1,
# 4*T1, ...) until Timer B (64*T1) gives up. A provisional moves to "Proceeding", where the
# request is no longer retransmitted and no timer runs (the proxy's Timer C bounds it).
# A 2xx moves to "Accepted" (RFC 6026): every further 2xx goes to the TU, since each may come
# from a different fork and the proxy forwards them all; the TU acks 2xx itself. Timer M
# (64*T1) ends it. A 300-699 moves to "Completed": the transaction sends the ACK itself
# (§17.1.1.3) and sends it again for each retransmission of the final response until Timer D
# (32 s on UDP, 0 on reliable transports). Responses with no transition of their own are
# absorbed. A transport error ends the transaction in any state (§17.1.4); ABANDON is the TU
# destroying the transaction (§9.1: no final response 64*T1 after a CANCEL).
_ICT_LIVE = (_C.CALLING, _C.PROCEEDING, _C.ACCEPTED, _C.COMPLETED)
ICT_TABLE: Mapping[tuple[ICTState, ClientInput], tuple[ClientAction, ICTState]] = MappingProxyType(
    {
        (_C.CALLING, _In.TIMER_A): (_Act.RETRANSMIT, _C.CALLING),
        (_C.CALLING, _In.TIMER_B): (_Act.TIME_OUT, _C.TERMINATED),
        (_C.CALLING, _In.PROVISIONAL): (_Act.REPORT, _C.PROCEEDING),
        (_C.CALLING, _In.SUCCESS): (_Act.REPORT, _C.ACCEPTED),
        (_C.CALLING, _In.FAILURE): (_Act.REPORT_AND_ACK, _C.COMPLETED),
        (_C.PROCEEDING, _In.PROVISIONAL): (_Act.REPORT, _C.PROCEEDING),
        (_C.PROCEEDING, _In.SUCCESS): (_Act.REPORT, _C.ACCEPTED),
        (_C.PROCEEDING, _In.FAILURE): (_Act.REPORT_AND_ACK, _C.COMPLETED),
        (_C.ACCEPTED, _In.PROVISIONAL): (_Act.ABSORB, _C.ACCEPTED),
        (_C.ACCEPTED, _In.SUCCESS): (_Act.REPORT, _C.ACCEPTED),
        (_C.ACCEPTED, _In.FAILURE): (_Act.ABSORB, _C.ACCEPTED),
        (_C.ACCEPTED, _In.TIMER_M): (_Act.END, _C.TERMINATED),
        (_C.COMPLETED, _In.PROVISIONAL): (_Act.ABSORB, _C.COMPLETED),
        (_C.COMPLETED, _In.SUCCESS): (_Act.ABSORB, _C.COMPLETED),
        (_C.COMPLETED, _In.FAILURE): (_Act.RESEND_ACK, _C.COMPLETED),
        (_C.COMPLETED, _In.TIMER_D): (_Act.END, _C.TERMINATED),
        **in_states(_ICT_LIVE, _In.TRANSPORT_ERROR, _Act.FAIL_TRANSPORT, _C.TERMINATED),
        **in_states(_ICT_LIVE, _In.ABANDON, _Act.END, _C.TERMINATED),
    }
)

ICT_SPEC: MachineSpec[ICTState, ClientInput, ClientAction] = MachineSpec(
    name="INVITE client transaction",
    table=ICT_TABLE,
    initial=_C.CALLING,
    terminated=_C.TERMINATED,
    live={
        _C.CALLING: frozenset({Timer.A, Timer.B}),
        _C.ACCEPTED: frozenset({Timer.M}),
        _C.COMPLETED: frozenset({Timer.D}),
    },
    entry={
        _C.CALLING: (Timer.A, Timer.B),
        _C.ACCEPTED: (Timer.M,),
        _C.COMPLETED: (Timer.D,),
    },
    timer_inputs={
        Timer.A: _In.TIMER_A,
        Timer.B: _In.TIMER_B,
        Timer.D: _In.TIMER_D,
        Timer.M: _In.TIMER_M,
    },
)

_N = NICTState

# Non-INVITE client transaction, RFC 3261 §17.1.2. "Trying": the request was sent; Timer E
# retransmits it on unreliable transports at T1, 2*T1, ... capped at T2, and keeps doing so
# in "Proceeding" (entered on a provisional), where each interval is T2. Timer F (64*T1)
# gives up in either state. Any final response (200-699) goes to the TU and moves to
# "Completed", which absorbs response retransmissions for Timer K (T4 on UDP, 0 on reliable
# transports). A transport error ends the transaction (§17.1.4).
_NICT_LIVE = (_N.TRYING, _N.PROCEEDING, _N.COMPLETED)
NICT_TABLE: Mapping[tuple[NICTState, ClientInput], tuple[ClientAction, NICTState]] = (
    MappingProxyType(
        {
            (_N.TRYING, _In.TIMER_E): (_Act.RETRANSMIT, _N.TRYING),
            (_N.TRYING, _In.TIMER_F): (_Act.TIME_OUT, _N.TERMINATED),
            (_N.TRYING, _In.PROVISIONAL): (_Act.REPORT, _N.PROCEEDING),
            (_N.TRYING, _In.SUCCESS): (_Act.REPORT, _N.COMPLETED),
            (_N.TRYING, _In.FAILURE): (_Act.REPORT, _N.COMPLETED),
            (_N.PROCEEDING, _In.TIMER_E): (_Act.RETRANSMIT, _N.PROCEEDING),
            (_N.PROCEEDING, _In.TIMER_F): (_Act.TIME_OUT, _N.TERMINATED),
            (_N.PROCEEDING, _In.PROVISIONAL): (_Act.REPORT, _N.PROCEEDING),
            (_N.PROCEEDING, _In.SUCCESS): (_Act.REPORT, _N.COMPLETED),
            (_N.PROCEEDING, _In.FAILURE): (_Act.REPORT, _N.COMPLETED),
            (_N.COMPLETED, _In.PROVISIONAL): (_Act.ABSORB, _N.COMPLETED),
            (_N.COMPLETED, _In.SUCCESS): (_Act.ABSORB, _N.COMPLETED),
            (_N.COMPLETED, _In.FAILURE): (_Act.ABSORB, _N.COMPLETED),
            (_N.COMPLETED, _In.TIMER_K): (_Act.END, _N.TERMINATED),
            **in_states(_NICT_LIVE, _In.TRANSPORT_ERROR, _Act.FAIL_TRANSPORT, _N.TERMINATED),
            **in_states(_NICT_LIVE, _In.ABANDON, _Act.END, _N.TERMINATED),
        }
    )
)

NICT_SPEC: MachineSpec[NICTState, ClientInput, ClientAction] = MachineSpec(
    name="non-INVITE client transaction",
    table=NICT_TABLE,
    initial=_N.TRYING,
    terminated=_N.TERMINATED,
    live={
        _N.TRYING: frozenset({Timer.E, Timer.F}),
        _N.PROCEEDING: frozenset({Timer.E, Timer.F}),
        _N.COMPLETED: frozenset({Timer.K}),
    },
    entry={_N.TRYING: (Timer.E, Timer.F), _N.COMPLETED: (Timer.K,)},
    timer_inputs={Timer.E: _In.TIMER_E, Timer.F: _In.TIMER_F, Timer.K: _In.TIMER_K},
    t2_rearm=frozenset({(_N.PROCEEDING, Timer.E)}),  # §17.1.2.2: "reset with T2"
)


def classify_response(status: int) -> ClientInput:
    """The table input of a response with ``status``."""
    if status < 200:
        return ClientInput.PROVISIONAL
    if status < 300:
        return ClientInput.SUCCESS
    return ClientInput.FAILURE


class ClientTransaction:
    """One client transaction: the request, where it goes, and its state machine.

    Created by :meth:`TransactionLayer.send_request`. ``request`` and ``dest`` are what the
    TU gave; ``key`` is the §17.1.3 matching key. ``cancel_requested`` and
    ``cancel_transaction`` record a CANCEL asked for with :meth:`TransactionLayer.cancel`.
    """

    __slots__ = (
        "_ack",
        "_data",
        "_machine",
        "_timer_deadline",
        "_timer_seq",
        "cancel_requested",
        "cancel_transaction",
        "dest",
        "key",
        "reliable",
        "request",
    )

    def __init__(
        self,
        request: Request,
        dest: object,
        key: ClientKey,
        config: TimerConfig,
        reliable: bool,
        now: float,
    ) -> None:
        self.request: Request | RequestSummary = request
        self.dest = dest
        self.key = key
        self.reliable = reliable
        self.cancel_requested = False
        self.cancel_transaction: ClientTransaction | None = None
        self._data = request.to_bytes()
        self._ack: bytes | None = None
        spec = ICT_SPEC if request.method == "INVITE" else NICT_SPEC
        self._machine: Machine[Any, ClientInput, ClientAction] = Machine(
            spec, config, reliable, now
        )
        self._timer_seq = -1
        self._timer_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.key.method} {self.key.branch} {self.state.value}>"

    @property
    def is_invite(self) -> bool:
        """Whether this is an INVITE client transaction."""
        return self.request.method == "INVITE"

    @property
    def state(self) -> ICTState | NICTState:
        """The current state."""
        state: ICTState | NICTState = self._machine.state
        return state

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over."""
        return self._machine.terminated

    def next_deadline(self) -> float | None:
        """The earliest armed timer deadline, None when no timer runs."""
        return self._machine.next_deadline()

    def start(self) -> list[Output]:
        """The first transmission of the request."""
        return [SendMessage(self._data, self.dest)]

    def receive_response(self, response: Response, source: object, now: float) -> list[Output]:
        """Feed a response matched to this transaction (§17.1.3)."""
        out = self._feed(classify_response(response.status), now, response, source)
        if response.status >= 200 and not isinstance(self.request, RequestSummary):
            # Lingering for retransmissions needs only bytes (see ServerTransaction._slim).
            self.request = RequestSummary.of(self.request)
        return out

    def handle_timer(self, now: float) -> list[Output]:
        """Fire every timer due at ``now``, earliest first."""
        out: list[Output] = []
        while (inp := self._machine.due(now)) is not None:
            out += self._feed(inp, now)
        return out

    def transport_error(self, reason: str, now: float) -> list[Output]:
        """The transport could not deliver the request or ACK (§17.1.4)."""
        return self._feed(ClientInput.TRANSPORT_ERROR, now, reason=reason)

    def abandon(self, now: float) -> list[Output]:
        """End the transaction without telling the peer (TU decision, e.g. §9.1)."""
        return self._feed(ClientInput.ABANDON, now)

    def _feed(
        self,
        inp: ClientInput,
        now: float,
        response: Response | None = None,
        source: object = None,
        reason: str = "",
    ) -> list[Output]:
        action = self._machine.step(inp, now)
        out = self._act(action, inp, response, source, reason)
        if self._machine.terminated:
            out.append(TransactionTerminated(self))
        return out

    def _act(
        self,
        action: ClientAction,
        inp: ClientInput,
        response: Response | None,
        source: object,
        reason: str,
    ) -> list[Output]:
        if action is ClientAction.RETRANSMIT:
            return [SendMessage(self._data, self.dest)]
        if action is ClientAction.TIME_OUT:
            timer = self._machine.spec.timer_of(inp)
            assert timer is not None
            return [TransactionTimedOut(self, timer)]
        if action is ClientAction.FAIL_TRANSPORT:
            return [TransportFailed(self, reason)]
        if action in (ClientAction.ABSORB, ClientAction.END):
            return []
        if response is None:
            raise ProtocolError(f"{action.name} needs a response")
        report = ResponseReceived(response, source, self)
        if action is ClientAction.REPORT:
            return [report]
        if action is ClientAction.REPORT_AND_ACK:
            assert not isinstance(self.request, RequestSummary)
            self._ack = build_ack(self.request, response).to_bytes()  # §17.1.1.3
            return [SendMessage(self._ack, self.dest), report]
        assert self._ack is not None  # RESEND_ACK only happens in "Completed"
        return [SendMessage(self._ack, self.dest)]
