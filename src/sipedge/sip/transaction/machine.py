"""The table-driven engine shared by the four transaction state machines.

A :class:`MachineSpec` holds one machine's transition table ``{(state, input): (action,
next_state)}`` and which timers live in each state; a :class:`Machine` is one running copy.
The machine knows nothing of messages: it maps abstract inputs to abstract actions, keeps the
state and the armed timers (as absolute deadlines) and leaves acting on the action to the
transaction object that owns it (:mod:`.client`, :mod:`.server`).

Timer rules, the same for every machine:

* entering a new state drops every timer not listed as live in it and arms its entry timers;
* when a retransmission timer (A, E, G) fires and the state does not change, it is re-armed
  with the backed-off interval (doubled, capped at T2 for E and G), or with T2 itself in the
  states the spec lists in ``t2_rearm`` (RFC 3261 §17.1.2.2, non-INVITE "Proceeding");
* a missing table entry, including every input in the terminated state, and a timer input
  for a timer that is not armed raise :class:`~sipedge.sip.errors.ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from ..errors import ProtocolError
from .timers import RETRANSMIT_TIMERS, Timer, TimerConfig

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741
A = TypeVar("A", bound=Enum)


def in_states(
    states: Iterable[S], inp: I, action: A, nxt: S | None = None
) -> dict[tuple[S, I], tuple[A, S]]:
    """Table entries giving ``inp`` the same action in every one of ``states``; the next
    state is ``nxt``, or the same state when ``nxt`` is None."""
    return {(s, inp): (action, s if nxt is None else nxt) for s in states}


@dataclass(frozen=True, slots=True)
class MachineSpec(Generic[S, I, A]):
    """One state machine: its table, initial and final states and its timer layout.

    ``live`` names the timers that may stay armed in each state, ``entry`` the ones armed on
    entering it; ``timer_inputs`` maps a timer to the input its expiry feeds the table.
    """

    name: str
    table: Mapping[tuple[S, I], tuple[A, S]]
    initial: S
    terminated: S
    live: Mapping[S, frozenset[Timer]]
    entry: Mapping[S, tuple[Timer, ...]]
    timer_inputs: Mapping[Timer, I]
    t2_rearm: frozenset[tuple[S, Timer]] = field(default_factory=frozenset)

    def timer_of(self, inp: I) -> Timer | None:
        """The timer whose expiry is ``inp``, None for other inputs."""
        for timer, timer_input in self.timer_inputs.items():
            if timer_input is inp:
                return timer
        return None

    def lookup(self, state: S, inp: I) -> tuple[A, S]:
        """The (action, next state) for ``inp`` in ``state``; ProtocolError if illegal."""
        try:
            return self.table[(state, inp)]
        except KeyError:
            raise ProtocolError(
                f"{self.name}: input {inp.name} is not allowed in state {state.name}"
            ) from None


class Machine(Generic[S, I, A]):
    """A running state machine with its armed timers.

    ``reliable`` selects the reliable-transport timer values (no retransmissions; D, I, J, K
    are zero). The initial state's entry timers are armed at ``now``.
    """

    __slots__ = ("_config", "_deadlines", "_intervals", "_reliable", "_state", "spec")

    def __init__(
        self, spec: MachineSpec[S, I, A], config: TimerConfig, reliable: bool, now: float
    ) -> None:
        self.spec = spec
        self._config = config
        self._reliable = reliable
        self._state = spec.initial
        self._deadlines: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}
        self._enter(spec.initial, now)

    @property
    def state(self) -> S:
        """The current state."""
        return self._state

    @property
    def terminated(self) -> bool:
        """Whether the machine reached its terminated state."""
        return self._state is self.spec.terminated

    @property
    def armed(self) -> Mapping[Timer, float]:
        """The armed timers and their absolute deadlines (read-only view)."""
        return dict(self._deadlines)

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, None when no timer is armed."""
        return min(self._deadlines.values(), default=None)

    def step(self, inp: I, now: float) -> A:
        """Feed one input at time ``now``; return the action the owner must carry out."""
        fired = self.spec.timer_of(inp)
        if fired is not None and fired not in self._deadlines:
            raise ProtocolError(f"{self.spec.name}: Timer {fired.value} is not armed")
        action, nxt = self.spec.lookup(self._state, inp)
        if fired is not None:
            del self._deadlines[fired]
        if nxt is not self._state:
            self._enter(nxt, now)
        elif fired in RETRANSMIT_TIMERS:
            self._rearm(fired, now)
        return action

    def due(self, now: float) -> I | None:
        """The input of the earliest timer due at ``now``, or None; feed it to :meth:`step`."""
        if not self._deadlines:
            return None
        timer = min(self._deadlines, key=self._deadlines.__getitem__)
        if self._deadlines[timer] > now:
            return None
        return self.spec.timer_inputs[timer]

    def _enter(self, state: S, now: float) -> None:
        self._state = state
        live = self.spec.live.get(state, frozenset())
        for timer in [t for t in self._deadlines if t not in live]:
            del self._deadlines[timer]
        for timer in self.spec.entry.get(state, ()):
            duration = self._config.duration(timer, self._reliable)
            if duration is not None:
                self._deadlines[timer] = now + duration
                self._intervals[timer] = duration

    def _rearm(self, timer: Timer, now: float) -> None:
        if (self._state, timer) in self.spec.t2_rearm:
            interval = self._config.t2
        else:
            interval = self._config.backoff(timer, self._intervals[timer])
        self._intervals[timer] = interval
        self._deadlines[timer] = now + interval
