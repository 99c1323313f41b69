"""Server transactions: INVITE (RFC 3261 §17.2.1 + RFC 6026) and non-INVITE (§17.2.2).

The two state tables below are the whole protocol logic; :class:`ServerTransaction` only
turns their actions into outputs (responses to send, events for the TU).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ProtocolError
from .events import (
    AckReceived,
    Output,
    SendMessage,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .key import LegacyKey, ServerKey
from .machine import Machine, MachineSpec, in_states
from .summary import RequestSummary
from .timers import FastEnum, Timer, TimerConfig

if TYPE_CHECKING:
    from ..message import Request, Response


class ISTState(FastEnum):
    """INVITE server transaction states (RFC 3261 Figure 7, RFC 6026 Figure 7)."""

    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class NISTState(FastEnum):
    """Non-INVITE server transaction states (RFC 3261 Figure 8)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ServerInput(FastEnum):
    """What can happen to a server transaction."""

    REQUEST = "request retransmission received"
    ACK = "ACK received"
    TU_PROVISIONAL = "1xx from TU"
    TU_SUCCESS = "2xx from TU"
    TU_FAILURE = "300-699 from TU"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"
    TRANSPORT_ERROR = "transport error"
    ABANDON = "TU abandons"


class ServerAction(FastEnum):
    """What the transaction does on a transition."""

    SEND = "send the TU's response and remember it"
    RESEND = "send the last response again (if any)"
    ABSORB = "nothing (retransmission absorbed)"
    REPORT_ACK = "pass the ACK to the TU"
    DISCARD = "drop the TU's response (§17.2.2)"
    TIME_OUT = "tell the TU the transaction timed out"
    FAIL_TRANSPORT = "tell the TU the transport failed"
    END = "nothing (quiet end)"


_S, _In, _Act = ISTState, ServerInput, ServerAction

# INVITE server transaction, RFC 3261 §17.2.1 as amended by RFC 6026 §7.1 and §8.7.
# "Proceeding": the INVITE reached the TU; each provisional from the TU is sent, and an INVITE
# retransmission re-sends the latest one (the layer may send 100 Trying at creation). A 2xx
# from the TU moves to "Accepted" (RFC 6026): INVITE retransmissions are absorbed (the UAS
# core retransmits its 2xx), further 2xx from the TU pass through (one per fork), an ACK that
# matches goes to the TU ("ACK / to TU", a 2xx ACK reusing the INVITE branch or matched by
# the RFC 2543 rules), and Timer L (64*T1) ends it. A 300-699 moves to "Completed": Timer G
# retransmits it on unreliable transports (T1 doubling to T2), INVITE retransmissions re-send
# it, Timer H (64*T1) gives up waiting for the ACK and tells the TU. The ACK moves to
# "Confirmed", which absorbs ACK and INVITE retransmissions until Timer I (T4; 0 on reliable
# transports). Per RFC 6026 Figure 7 a transport error is reported to the TU and does not end
# the transaction (timers H and L still bound its life), except in "Confirmed", where
# nothing more is sent. Responses from the TU in "Completed"/"Confirmed", or non-2xx in
# "Accepted", are local misuse: no entry, ProtocolError.
_IST_LIVE = (_S.PROCEEDING, _S.ACCEPTED, _S.COMPLETED, _S.CONFIRMED)
IST_TABLE: Mapping[tuple[ISTState, ServerInput], tuple[ServerAction, ISTState]] = MappingProxyType(
    {
        (_S.PROCEEDING, _In.REQUEST): (_Act.RESEND, _S.PROCEEDING),
        (_S.PROCEEDING, _In.ACK): (_Act.ABSORB, _S.PROCEEDING),
        (_S.PROCEEDING, _In.TU_PROVISIONAL): (_Act.SEND, _S.PROCEEDING),
        (_S.PROCEEDING, _In.TU_SUCCESS): (_Act.SEND, _S.ACCEPTED),
        (_S.PROCEEDING, _In.TU_FAILURE): (_Act.SEND, _S.COMPLETED),
        (_S.PROCEEDING, _In.TRANSPORT_ERROR): (_Act.FAIL_TRANSPORT, _S.PROCEEDING),
        (_S.ACCEPTED, _In.REQUEST): (_Act.ABSORB, _S.ACCEPTED),
        (_S.ACCEPTED, _In.ACK): (_Act.REPORT_ACK, _S.ACCEPTED),
        (_S.ACCEPTED, _In.TU_SUCCESS): (_Act.SEND, _S.ACCEPTED),
        (_S.ACCEPTED, _In.TIMER_L): (_Act.END, _S.TERMINATED),
        (_S.ACCEPTED, _In.TRANSPORT_ERROR): (_Act.FAIL_TRANSPORT, _S.ACCEPTED),
        (_S.COMPLETED, _In.REQUEST): (_Act.RESEND, _S.COMPLETED),
        (_S.COMPLETED, _In.ACK): (_Act.ABSORB, _S.CONFIRMED),
        (_S.COMPLETED, _In.TIMER_G): (_Act.RESEND, _S.COMPLETED),
        (_S.COMPLETED, _In.TIMER_H): (_Act.TIME_OUT, _S.TERMINATED),
        (_S.COMPLETED, _In.TRANSPORT_ERROR): (_Act.FAIL_TRANSPORT, _S.COMPLETED),
        (_S.CONFIRMED, _In.REQUEST): (_Act.ABSORB, _S.CONFIRMED),
        (_S.CONFIRMED, _In.ACK): (_Act.ABSORB, _S.CONFIRMED),
        (_S.CONFIRMED, _In.TIMER_I): (_Act.END, _S.TERMINATED),
        (_S.CONFIRMED, _In.TRANSPORT_ERROR): (_Act.FAIL_TRANSPORT, _S.TERMINATED),
        **in_states(_IST_LIVE, _In.ABANDON, _Act.END, _S.TERMINATED),
    }
)

IST_SPEC: MachineSpec[ISTState, ServerInput, ServerAction] = MachineSpec(
    name="INVITE server transaction",
    table=IST_TABLE,
    initial=_S.PROCEEDING,
    terminated=_S.TERMINATED,
    live={
        _S.ACCEPTED: frozenset({Timer.L}),
        _S.COMPLETED: frozenset({Timer.G, Timer.H}),
        _S.CONFIRMED: frozenset({Timer.I}),
    },
    entry={
        _S.ACCEPTED: (Timer.L,),
        _S.COMPLETED: (Timer.G, Timer.H),
        _S.CONFIRMED: (Timer.I,),
    },
    timer_inputs={
        Timer.G: _In.TIMER_G,
        Timer.H: _In.TIMER_H,
        Timer.I: _In.TIMER_I,
        Timer.L: _In.TIMER_L,
    },
)

_N = NISTState

# Non-INVITE server transaction, RFC 3261 §17.2.2. "Trying": the request reached the TU;
# retransmissions are absorbed until the TU answers. A provisional moves to "Proceeding",
# where retransmissions re-send the latest provisional. A final response (200-699) moves to
# "Completed", where retransmissions re-send it and further responses from the TU are
# discarded ("MUST be discarded"), until Timer J (64*T1 on UDP, 0 on reliable transports).
# A transport error ends the transaction (§17.2.4).
_NIST_LIVE = (_N.TRYING, _N.PROCEEDING, _N.COMPLETED)
NIST_TABLE: Mapping[tuple[NISTState, ServerInput], tuple[ServerAction, NISTState]] = (
    MappingProxyType(
        {
            (_N.TRYING, _In.REQUEST): (_Act.ABSORB, _N.TRYING),
            (_N.TRYING, _In.TU_PROVISIONAL): (_Act.SEND, _N.PROCEEDING),
            (_N.TRYING, _In.TU_SUCCESS): (_Act.SEND, _N.COMPLETED),
            (_N.TRYING, _In.TU_FAILURE): (_Act.SEND, _N.COMPLETED),
            (_N.PROCEEDING, _In.REQUEST): (_Act.RESEND, _N.PROCEEDING),
            (_N.PROCEEDING, _In.TU_PROVISIONAL): (_Act.SEND, _N.PROCEEDING),
            (_N.PROCEEDING, _In.TU_SUCCESS): (_Act.SEND, _N.COMPLETED),
            (_N.PROCEEDING, _In.TU_FAILURE): (_Act.SEND, _N.COMPLETED),
            (_N.COMPLETED, _In.REQUEST): (_Act.RESEND, _N.COMPLETED),
            (_N.COMPLETED, _In.TU_PROVISIONAL): (_Act.DISCARD, _N.COMPLETED),
            (_N.COMPLETED, _In.TU_SUCCESS): (_Act.DISCARD, _N.COMPLETED),
            (_N.COMPLETED, _In.TU_FAILURE): (_Act.DISCARD, _N.COMPLETED),
            (_N.COMPLETED, _In.TIMER_J): (_Act.END, _N.TERMINATED),
            **in_states(_NIST_LIVE, _In.TRANSPORT_ERROR, _Act.FAIL_TRANSPORT, _N.TERMINATED),
            **in_states(_NIST_LIVE, _In.ABANDON, _Act.END, _N.TERMINATED),
        }
    )
)

NIST_SPEC: MachineSpec[NISTState, ServerInput, ServerAction] = MachineSpec(
    name="non-INVITE server transaction",
    table=NIST_TABLE,
    initial=_N.TRYING,
    terminated=_N.TERMINATED,
    live={_N.COMPLETED: frozenset({Timer.J})},
    entry={_N.COMPLETED: (Timer.J,)},
    timer_inputs={Timer.J: _In.TIMER_J},
)


def classify_tu_response(status: int) -> ServerInput:
    """The table input of a response with ``status`` passed down by the TU."""
    if not 100 <= status <= 699:
        raise ProtocolError(f"status {status} is not a SIP status code")
    if status < 200:
        return ServerInput.TU_PROVISIONAL
    if status < 300:
        return ServerInput.TU_SUCCESS
    return ServerInput.TU_FAILURE


class ServerTransaction:
    """One server transaction: the request that created it, its source and its machine.

    Created by :meth:`TransactionLayer.create_server_transaction`. Responses go to
    ``source`` (the opaque origin given with the request). ``last_response`` is the latest
    response sent; ``response_to_tag`` the To tag of the latest final response, which an
    RFC 2543 ACK must carry to match (§17.2.3).
    """

    __slots__ = (
        "_last",
        "_machine",
        "_timer_deadline",
        "_timer_seq",
        "key",
        "last_response",
        "reliable",
        "request",
        "response_to_tag",
        "source",
    )

    def __init__(
        self,
        request: Request,
        source: object,
        key: ServerKey | LegacyKey,
        config: TimerConfig,
        reliable: bool,
        now: float,
    ) -> None:
        self.request: Request | RequestSummary = request
        self.source = source
        self.key = key
        self.reliable = reliable
        self.last_response: Response | None = None
        self.response_to_tag: str | None = None
        self._last: bytes | None = None
        spec = IST_SPEC if request.method == "INVITE" else NIST_SPEC
        self._machine: Machine[Any, ServerInput, ServerAction] = Machine(
            spec, config, reliable, now
        )
        self._timer_seq = -1
        self._timer_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.request.method} {self.state.value}>"

    @property
    def is_invite(self) -> bool:
        """Whether this is an INVITE server transaction."""
        return self.request.method == "INVITE"

    @property
    def state(self) -> ISTState | NISTState:
        """The current state."""
        state: ISTState | NISTState = self._machine.state
        return state

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over."""
        return self._machine.terminated

    def next_deadline(self) -> float | None:
        """The earliest armed timer deadline, None when no timer runs."""
        return self._machine.next_deadline()

    def send_response(self, response: Response, now: float) -> list[Output]:
        """Send a response from the TU (ProtocolError when the state does not allow it)."""
        inp = classify_tu_response(response.status)
        action = self._machine.step(inp, now)
        if action is ServerAction.DISCARD:
            return self._finish([])
        self._last = response.to_bytes()
        self.last_response = response
        if response.status >= 200:
            self.response_to_tag = response.to_tag
            self._slim()
        return self._finish([SendMessage(self._last, self.source)])

    def _slim(self) -> None:
        """After a final response only the bytes to retransmit and the matching keys are
        needed: drop the parsed messages so lingering transactions (Timers G-L, up to 32 s)
        hold a handful of objects instead of two message trees (garbage-collector load)."""
        self.last_response = None
        if not isinstance(self.request, RequestSummary):
            self.request = RequestSummary.of(self.request)

    def receive_request(self, now: float) -> list[Output]:
        """A retransmission of the request matched this transaction (§17.2.3)."""
        return self._feed(ServerInput.REQUEST, now)

    def receive_ack(self, ack: Request, source: object, now: float) -> list[Output]:
        """An ACK matched this INVITE transaction (§17.2.3)."""
        return self._feed(ServerInput.ACK, now, ack, source)

    def handle_timer(self, now: float) -> list[Output]:
        """Fire every timer due at ``now``, earliest first."""
        out: list[Output] = []
        while (inp := self._machine.due(now)) is not None:
            out += self._feed(inp, now)
        return out

    def transport_error(self, reason: str, now: float) -> list[Output]:
        """The transport could not deliver a response (§17.2.4, RFC 6026 Figure 7)."""
        return self._feed(ServerInput.TRANSPORT_ERROR, now, reason=reason)

    def abandon(self, now: float) -> list[Output]:
        """End the transaction without answering (TU decision)."""
        return self._feed(ServerInput.ABANDON, now)

    def _feed(
        self,
        inp: ServerInput,
        now: float,
        ack: Request | None = None,
        source: object = None,
        reason: str = "",
    ) -> list[Output]:
        action = self._machine.step(inp, now)
        out: list[Output] = []
        if action is ServerAction.RESEND and self._last is not None:
            out.append(SendMessage(self._last, self.source))
        elif action is ServerAction.REPORT_ACK and ack is not None:
            out.append(AckReceived(ack, source, self))
        elif action is ServerAction.TIME_OUT:
            timer = self._machine.spec.timer_of(inp)
            assert timer is not None
            out.append(TransactionTimedOut(self, timer))
        elif action is ServerAction.FAIL_TRANSPORT:
            out.append(TransportFailed(self, reason))
        return self._finish(out)

    def _finish(self, out: list[Output]) -> list[Output]:
        if self._machine.terminated:
            out.append(TransactionTerminated(self))
        return out
