"""message.quick_tag: its quicker regex for the usual From/To shapes agrees with the full one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip.hdr.nameaddr import parse_name_addr
from sipedge.sip.message import _NAME_ADDR_FAST, _NAME_ADDR_USUAL, quick_tag

BOTH_PATHS_INSIDE = True  # conftest: nothing here depends on the parser path


@settings(max_examples=150, deadline=None)
@given(st.from_regex(_NAME_ADDR_USUAL, fullmatch=True))
def test_every_usual_shape_is_a_fast_shape_with_the_same_parameters(value: str) -> None:
    usual = _NAME_ADDR_USUAL.fullmatch(value)
    fast = _NAME_ADDR_FAST.fullmatch(value)
    assert usual is not None and fast is not None
    assert usual.group(1) == fast.group(1)


def test_tags_of_the_usual_shapes() -> None:
    cases = {
        "Alice <sip:alice@atlanta.example.com>;tag=1928301774": "1928301774",
        '"A b" <sip:x@y>;TAG=1;x': "1",
        "<sip:x>;x;tag=t;tag=u": "t",
        "a b <sip:x>": None,
        "<sip:x>;tagx=1": None,
    }
    for value, tag in cases.items():
        assert _NAME_ADDR_USUAL.fullmatch(value) is not None
        assert quick_tag(value) == tag == parse_name_addr(value).tag
