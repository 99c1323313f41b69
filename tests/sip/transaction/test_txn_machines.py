"""The four transaction state tables, checked pair by pair and with random input sequences."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.errors import ProtocolError
from sipedge.sip.transaction.client import (
    ICT_SPEC,
    NICT_SPEC,
    ClientAction,
    ClientInput,
    ICTState,
    NICTState,
)
from sipedge.sip.transaction.machine import Machine, MachineSpec
from sipedge.sip.transaction.server import (
    IST_SPEC,
    NIST_SPEC,
    ISTState,
    NISTState,
    ServerAction,
    ServerInput,
)
from sipedge.sip.transaction.timers import RETRANSMIT_TIMERS, TimerConfig

Spec = MachineSpec[Any, Any, Any]
SPECS: list[tuple[Spec, type[Enum], type[Enum]]] = [
    (ICT_SPEC, ICTState, ClientInput),
    (NICT_SPEC, NICTState, ClientInput),
    (IST_SPEC, ISTState, ServerInput),
    (NIST_SPEC, NISTState, ServerInput),
]
IDS = ["ICT", "NICT", "IST", "NIST"]

# Inputs the remote peer or the transport cause: they must never raise in a live state.
REMOTE: dict[str, list[Enum]] = {
    "ICT": [ClientInput.PROVISIONAL, ClientInput.SUCCESS, ClientInput.FAILURE],
    "NICT": [ClientInput.PROVISIONAL, ClientInput.SUCCESS, ClientInput.FAILURE],
    "IST": [ServerInput.REQUEST, ServerInput.ACK],
    "NIST": [ServerInput.REQUEST],
}
ALWAYS = {ClientInput.TRANSPORT_ERROR, ClientInput.ABANDON}
ALWAYS_S = {ServerInput.TRANSPORT_ERROR, ServerInput.ABANDON}


@pytest.mark.parametrize(("spec", "states", "inputs"), SPECS, ids=IDS)
def test_every_pair_is_a_legal_transition_or_a_protocol_error(
    spec: Spec, states: type[Enum], inputs: type[Enum]
) -> None:
    actions = ClientAction if inputs is ClientInput else ServerAction
    for state in states:
        for inp in inputs:
            try:
                action, nxt = spec.lookup(state, inp)
            except ProtocolError as exc:
                assert state.name in str(exc) and inp.name in str(exc)
                continue
            assert isinstance(nxt, states) and isinstance(action, actions)


@pytest.mark.parametrize(("spec", "states", "inputs"), SPECS, ids=IDS)
def test_terminated_accepts_nothing(spec: Spec, states: type[Enum], inputs: type[Enum]) -> None:
    for inp in inputs:
        with pytest.raises(ProtocolError):
            spec.lookup(spec.terminated, inp)


@pytest.mark.parametrize(("spec", "states", "inputs"), SPECS, ids=IDS)
def test_peer_input_transport_error_and_abandon_never_raise_in_a_live_state(
    spec: Spec, states: type[Enum], inputs: type[Enum]
) -> None:
    name = IDS[[s for s, _, _ in SPECS].index(spec)]
    must = set(REMOTE[name]) | (ALWAYS if inputs is ClientInput else ALWAYS_S)
    for state in states:
        if state is not spec.terminated:
            for inp in must:
                spec.lookup(state, inp)


@pytest.mark.parametrize(("spec", "states", "inputs"), SPECS, ids=IDS)
def test_timer_inputs_exist_exactly_where_the_timer_lives(
    spec: Spec, states: type[Enum], inputs: type[Enum]
) -> None:
    for state in states:
        live = spec.live.get(state, frozenset())
        for timer, inp in spec.timer_inputs.items():
            assert ((state, inp) in spec.table) == (timer in live), (state, timer)
        assert set(spec.entry.get(state, ())) <= live


@pytest.mark.parametrize(("spec", "states", "inputs"), SPECS, ids=IDS)
def test_every_state_is_reachable_and_can_terminate(
    spec: Spec, states: type[Enum], inputs: type[Enum]
) -> None:
    edges: dict[Enum, set[Enum]] = {s: set() for s in states}
    for (state, _), (_, nxt) in spec.table.items():
        edges[state].add(nxt)
    reach = {spec.initial}
    todo = [spec.initial]
    while todo:
        for nxt in edges[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert reach == set(states)
    for state in states:
        seen, todo = {state}, [state]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert spec.terminated in seen


C, S = ClientInput, ServerInput
CA, SA = ClientAction, ServerAction
# The transitions the RFCs spell out, written out again independently of the tables.
RFC_CASES: list[tuple[Spec, Enum, Enum, Enum, Enum]] = [
    (ICT_SPEC, ICTState.CALLING, C.TIMER_A, CA.RETRANSMIT, ICTState.CALLING),
    (ICT_SPEC, ICTState.CALLING, C.TIMER_B, CA.TIME_OUT, ICTState.TERMINATED),
    (ICT_SPEC, ICTState.CALLING, C.PROVISIONAL, CA.REPORT, ICTState.PROCEEDING),
    (ICT_SPEC, ICTState.CALLING, C.SUCCESS, CA.REPORT, ICTState.ACCEPTED),
    (ICT_SPEC, ICTState.PROCEEDING, C.FAILURE, CA.REPORT_AND_ACK, ICTState.COMPLETED),
    (ICT_SPEC, ICTState.ACCEPTED, C.SUCCESS, CA.REPORT, ICTState.ACCEPTED),  # RFC 6026
    (ICT_SPEC, ICTState.ACCEPTED, C.TIMER_M, CA.END, ICTState.TERMINATED),
    (ICT_SPEC, ICTState.COMPLETED, C.FAILURE, CA.RESEND_ACK, ICTState.COMPLETED),
    (ICT_SPEC, ICTState.COMPLETED, C.TIMER_D, CA.END, ICTState.TERMINATED),
    (ICT_SPEC, ICTState.PROCEEDING, C.TRANSPORT_ERROR, CA.FAIL_TRANSPORT, ICTState.TERMINATED),
    (NICT_SPEC, NICTState.TRYING, C.TIMER_E, CA.RETRANSMIT, NICTState.TRYING),
    (NICT_SPEC, NICTState.TRYING, C.SUCCESS, CA.REPORT, NICTState.COMPLETED),
    (NICT_SPEC, NICTState.PROCEEDING, C.TIMER_F, CA.TIME_OUT, NICTState.TERMINATED),
    (NICT_SPEC, NICTState.COMPLETED, C.FAILURE, CA.ABSORB, NICTState.COMPLETED),
    (NICT_SPEC, NICTState.COMPLETED, C.TIMER_K, CA.END, NICTState.TERMINATED),
    (IST_SPEC, ISTState.PROCEEDING, S.REQUEST, SA.RESEND, ISTState.PROCEEDING),
    (IST_SPEC, ISTState.PROCEEDING, S.TU_SUCCESS, SA.SEND, ISTState.ACCEPTED),
    (IST_SPEC, ISTState.PROCEEDING, S.TU_FAILURE, SA.SEND, ISTState.COMPLETED),
    (IST_SPEC, ISTState.ACCEPTED, S.REQUEST, SA.ABSORB, ISTState.ACCEPTED),
    (IST_SPEC, ISTState.ACCEPTED, S.TU_SUCCESS, SA.SEND, ISTState.ACCEPTED),
    (IST_SPEC, ISTState.ACCEPTED, S.ACK, SA.REPORT_ACK, ISTState.ACCEPTED),  # RFC 6026 Fig. 7
    (IST_SPEC, ISTState.ACCEPTED, S.TIMER_L, SA.END, ISTState.TERMINATED),
    (IST_SPEC, ISTState.COMPLETED, S.TIMER_G, SA.RESEND, ISTState.COMPLETED),
    (IST_SPEC, ISTState.COMPLETED, S.TIMER_H, SA.TIME_OUT, ISTState.TERMINATED),
    (IST_SPEC, ISTState.COMPLETED, S.ACK, SA.ABSORB, ISTState.CONFIRMED),
    (IST_SPEC, ISTState.CONFIRMED, S.ACK, SA.ABSORB, ISTState.CONFIRMED),
    (IST_SPEC, ISTState.CONFIRMED, S.TIMER_I, SA.END, ISTState.TERMINATED),
    (IST_SPEC, ISTState.PROCEEDING, S.TRANSPORT_ERROR, SA.FAIL_TRANSPORT, ISTState.PROCEEDING),
    (NIST_SPEC, NISTState.TRYING, S.REQUEST, SA.ABSORB, NISTState.TRYING),
    (NIST_SPEC, NISTState.TRYING, S.TU_PROVISIONAL, SA.SEND, NISTState.PROCEEDING),
    (NIST_SPEC, NISTState.PROCEEDING, S.REQUEST, SA.RESEND, NISTState.PROCEEDING),
    (NIST_SPEC, NISTState.COMPLETED, S.REQUEST, SA.RESEND, NISTState.COMPLETED),
    (NIST_SPEC, NISTState.COMPLETED, S.TU_FAILURE, SA.DISCARD, NISTState.COMPLETED),
    (NIST_SPEC, NISTState.COMPLETED, S.TIMER_J, SA.END, NISTState.TERMINATED),
    (NIST_SPEC, NISTState.PROCEEDING, S.TRANSPORT_ERROR, SA.FAIL_TRANSPORT, NISTState.TERMINATED),
]


@pytest.mark.parametrize(("spec", "state", "inp", "action", "nxt"), RFC_CASES)
def test_rfc_transitions(spec: Spec, state: Enum, inp: Enum, action: Enum, nxt: Enum) -> None:
    assert spec.lookup(state, inp) == (action, nxt)


@pytest.mark.parametrize(
    ("spec", "state", "inp"),
    [
        (IST_SPEC, ISTState.COMPLETED, S.TU_SUCCESS),
        (IST_SPEC, ISTState.ACCEPTED, S.TU_FAILURE),
        (IST_SPEC, ISTState.CONFIRMED, S.TU_PROVISIONAL),
        (ICT_SPEC, ICTState.PROCEEDING, C.TIMER_A),
        (NIST_SPEC, NISTState.TRYING, S.ACK),
    ],
)
def test_local_misuse_is_a_protocol_error(spec: Spec, state: Enum, inp: Enum) -> None:
    with pytest.raises(ProtocolError):
        spec.lookup(state, inp)


def test_unarmed_timer_input_is_a_protocol_error() -> None:
    m = Machine(ICT_SPEC, TimerConfig(), reliable=True, now=0.0)  # no Timer A on TCP
    with pytest.raises(ProtocolError, match="not armed"):
        m.step(ClientInput.TIMER_A, 0.0)
    assert m.state is ICTState.CALLING


# A step is either an input or a jump of the clock that fires whatever timers are due.
steps = st.lists(
    st.one_of(
        st.sampled_from(list(ClientInput) + list(ServerInput)),
        st.floats(min_value=0.0, max_value=40.0),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(idx=st.integers(0, 3), reliable=st.booleans(), seq=steps)
def test_random_sequences_keep_the_machine_defined(
    idx: int, reliable: bool, seq: list[Enum | float]
) -> None:
    spec, states, inputs = SPECS[idx]
    m: Machine[Any, Any, Any] = Machine(spec, TimerConfig(), reliable, 0.0)
    now = 0.0
    for step in seq:
        before = (m.state, dict(m.armed))
        if isinstance(step, float):
            now += step
            while (inp := m.due(now)) is not None:
                m.step(inp, now)
        elif isinstance(step, inputs):
            try:
                m.step(step, now)
            except ProtocolError:
                assert (m.state, dict(m.armed)) == before  # a refused input changes nothing
        assert isinstance(m.state, states)
        live = spec.live.get(m.state, frozenset())
        assert set(m.armed) <= live
        # After a clock jump nothing due is left; after an input a zero timer may be due now.
        if isinstance(step, float):
            assert all(deadline > now for deadline in m.armed.values())
        assert all(deadline >= now for deadline in m.armed.values())
        if reliable:
            assert not set(m.armed) & RETRANSMIT_TIMERS
        if m.terminated:
            assert not m.armed and m.next_deadline() is None
            for inp in inputs:
                with pytest.raises(ProtocolError):
                    m.step(inp, now)
