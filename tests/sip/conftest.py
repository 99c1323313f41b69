"""Run every test of the SIP core twice: with the C accelerator and with the pure path.

The accelerator (``sipedge.sip._speedups``) is optional; where it was not built, or where
``SIPEDGE_PURE=1`` is set, every test runs once, on the pure path. unittest-style cases
(the Hypothesis state machines) cannot be parametrized and run once, on the default path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sipedge.sip import _accel

BUILT = _accel.SPEEDUPS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A module that compares the two paths itself sets BOTH_PATHS_INSIDE.
    both_inside = getattr(metafunc.module, "BOTH_PATHS_INSIDE", False)
    if BUILT is not None and "parser_path" in metafunc.fixturenames and not both_inside:
        metafunc.parametrize("parser_path", ["c", "pure"], indirect=True)


@pytest.fixture(autouse=True)
def parser_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Select the parser path for one test; yields ``"c"`` or ``"pure"``."""
    path = getattr(request, "param", "c" if BUILT is not None else "pure")
    if path == "c":
        monkeypatch.setattr(_accel, "SPEEDUPS", BUILT)
    else:
        monkeypatch.setattr(_accel, "SPEEDUPS", None)
    yield path
