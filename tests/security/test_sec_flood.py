"""Flood detection (pike-like sliding window) and auth-failure tracking, on a manual clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.security import AuthFailSettings, AuthFailures, FloodDetector, FloodSettings

IP = "203.0.113.5"


def burst(f: FloodDetector, n: int, now: float, ip: str = IP) -> list[bool]:
    return [f.hit(ip, now) for _ in range(n)]


def test_pike_defaults() -> None:
    s = FloodSettings()
    assert (s.sampling_time_unit, s.reqs_density_per_unit) == (2.0, 30)


def test_density_edge_within_one_unit() -> None:
    f = FloodDetector()
    assert burst(f, 30, 0.5) == [False] * 30  # just under: exactly the density
    assert f.hit(IP, 1.9) is True  # just over: the 31st in the same unit


def test_previous_unit_weighs_by_overlap() -> None:
    f = FloodDetector()
    burst(f, 30, 1.0)  # bucket [0, 2)
    # At 3.0 half of the window still covers the previous bucket: 30 * 0.5 = 15 left.
    assert burst(f, 15, 3.0) == [False] * 15
    assert f.hit(IP, 3.0) is True


def test_boundary_counts_previous_bucket_fully() -> None:
    f = FloodDetector()
    burst(f, 30, 1.99)
    assert f.hit(IP, 2.0) is True  # a window of 2 s ending at 2.0 holds 31 requests


def test_gap_of_a_whole_unit_forgets() -> None:
    f = FloodDetector()
    burst(f, 30, 0.0)
    assert burst(f, 30, 4.0) == [False] * 30  # previous bucket [2,4) was empty


def test_steady_rate_at_density_never_trips() -> None:
    f = FloodDetector(FloodSettings(sampling_time_unit=1.0, reqs_density_per_unit=10))
    # 10 requests per second, evenly spaced, for a minute.
    assert not any(f.hit(IP, i / 10 + 0.05) for i in range(600))
    f2 = FloodDetector(FloodSettings(sampling_time_unit=1.0, reqs_density_per_unit=10))
    # 12 per second trips within the first two seconds.
    trips = [i for i in range(600) if f2.hit(IP, i / 12)]
    assert trips and trips[0] < 24


def test_sources_are_independent() -> None:
    f = FloodDetector()
    burst(f, 30, 0.0)
    assert f.hit("203.0.113.6", 0.0) is False
    assert f.hit(IP, 0.0) is True


def test_lru_bounds_memory_and_forget() -> None:
    f = FloodDetector(FloodSettings(max_sources=3))
    for i in range(10):
        f.hit(f"10.0.0.{i}", 0.0)
    assert len(f) == 3
    f.forget("10.0.0.9")
    assert len(f) == 2
    # The least recently seen source goes first.
    g = FloodDetector(FloodSettings(max_sources=2, reqs_density_per_unit=1))
    g.hit("a", 0.0)
    g.hit("b", 0.0)
    g.hit("a", 0.0)  # over for a; a is now the most recent
    g.hit("c", 0.0)  # evicts b
    assert g.hit("a", 0.0) is True
    assert g.hit("b", 0.0) is False  # forgotten, counts afresh


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        FloodDetector(FloodSettings(sampling_time_unit=0))
    with pytest.raises(ValueError):
        AuthFailures(AuthFailSettings(max_failures=0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=120))
def test_flood_bounds(times: list[float]) -> None:
    """Never trips while every 2-unit window holds at most the density (the estimate never
    exceeds the true count of the last two buckets), and always trips once one bucket
    alone holds more than the density."""
    density, unit = 5, 1.0
    f = FloodDetector(FloodSettings(sampling_time_unit=unit, reqs_density_per_unit=density))
    times = sorted(times)
    for i, t in enumerate(times):
        tripped = f.hit(IP, t)
        bucket = int(t // unit)
        in_two = sum(1 for u in times[: i + 1] if int(u // unit) >= bucket - 1)
        in_one = sum(1 for u in times[: i + 1] if int(u // unit) == bucket)
        if in_two <= density:
            assert not tripped
        if in_one > density:
            assert tripped


# ----------------------------------------------------------------- auth failures


def test_source_banned_at_max_failures_within_window() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=5, window=60.0))
    assert [a.failed(IP, "1000", float(t)) for t in range(4)] == [[]] * 4
    assert a.failed(IP, "1000", 59.0) == [(IP, "auth")]
    # counting starts over after the ban
    assert a.failed(IP, "1000", 61.0) == []


def test_failures_spread_wider_than_window_do_not_ban() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=5, window=60.0, user_max_failures=100))
    out = [a.failed(IP, "1000", t * 15.0) for t in range(20)]  # 4 per minute
    assert out == [[]] * 20
    b = AuthFailures(AuthFailSettings(max_failures=5, window=60.0))
    edge = [b.failed(IP, None, t * 15.0) for t in range(5)]  # 5th exactly 60 s later
    assert edge == [[]] * 5
    c = AuthFailures(AuthFailSettings(max_failures=5, window=60.0))
    under = [c.failed(IP, None, t * 14.99) for t in range(5)]
    assert under[-1] == [(IP, "auth")]


def test_malformed_credentials_count_without_a_user() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=2))
    assert a.failed(IP, None, 0.0) == []
    assert a.failed(IP, None, 1.0) == [(IP, "auth")]


def test_one_user_from_many_sources_bans_them_all() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=5, user_max_failures=6, user_window=300.0))
    sources = [f"198.51.100.{i}" for i in range(6)]
    out: list[list[tuple[str, str]]] = []
    for t, src in enumerate(sources):
        out.append(a.failed(src, "alice", float(t)))
    assert out[:5] == [[]] * 5
    assert sorted(out[5]) == sorted((s, "auth-user") for s in sources)
    # While the user stays over the limit, each new source is banned on its first failure.
    assert a.failed("198.51.100.99", "alice", 10.0) == [("198.51.100.99", "auth-user")]
    # Another user is unaffected.
    assert a.failed("198.51.100.98", "bob", 10.0) == []


def test_user_window_expiry() -> None:
    a = AuthFailures(AuthFailSettings(user_max_failures=3, user_window=100.0))
    assert a.failed("10.0.0.1", "alice", 0.0) == []
    assert a.failed("10.0.0.2", "alice", 50.0) == []
    # the first failure is out of the window when the third arrives
    assert a.failed("10.0.0.3", "alice", 100.0) == []
    assert sorted(a.failed("10.0.0.4", "alice", 120.0)) == [
        ("10.0.0.2", "auth-user"),
        ("10.0.0.3", "auth-user"),
        ("10.0.0.4", "auth-user"),
    ]


def test_source_and_user_limits_report_a_source_once() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=2, user_max_failures=2))
    a.failed(IP, "alice", 0.0)
    assert a.failed(IP, "alice", 1.0) == [(IP, "auth")]


def test_bounded_tracking() -> None:
    a = AuthFailures(AuthFailSettings(max_failures=2, max_tracked=2, max_sources_per_user=2))
    a.failed("10.0.0.1", "u", 0.0)
    a.failed("10.0.0.2", "v", 0.0)
    a.failed("10.0.0.3", "w", 0.0)  # evicts 10.0.0.1 and user u
    assert a.failed("10.0.0.1", "u", 1.0) == []  # its first failure was forgotten
    a.forget("10.0.0.1")
    assert a.failed("10.0.0.1", None, 2.0) == []
