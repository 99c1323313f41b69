"""Fixtures of the interop tests: loopback ports, the proxy under test and SIPp runs.

The proxy is sipedge unless SIPEDGE_TEST_PROXY=kamailio selects the development stand-in
(see interop_proxy). Every test gets its own proxy on fresh ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_media import RtpEngineDaemon
from interop_net import PortAllocator
from interop_proxy import ProxyProcess, Topology, proxy_kind
from interop_sipp import Sipps, sipp_path


@pytest.fixture(autouse=True)
def _require_sipp() -> None:
    if sipp_path() is None:
        pytest.skip("SIPp is not installed (Debian package sip-tester)")


@pytest.fixture(scope="session")
def ports() -> PortAllocator:
    """Free loopback ports, never handed out twice in a session."""
    return PortAllocator()


@pytest.fixture
def topo(ports: PortAllocator) -> Topology:
    """Fresh ports for the proxy and the UASes of one test."""
    return Topology(
        proxy=ports.take(),
        uas=ports.take(),
        tcp_uas=ports.take(),
        fork_a=ports.take(),
        fork_b=ports.take(),
    )


@pytest.fixture
def proxy(topo: Topology, tmp_path: Path) -> Iterator[ProxyProcess]:
    """The proxy under test, started and answering OPTIONS on UDP and TCP."""
    process = ProxyProcess(proxy_kind(), topo, tmp_path / "proxy")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def sipps(tmp_path: Path, ports: PortAllocator) -> Iterator[Sipps]:
    """Starts SIPp UAS/UAC processes for a test; kills leftovers at teardown."""
    pool = Sipps(tmp_path / "sipp", ports.take)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpEngineDaemon]:
    """A real rtpengine (userspace, loopback, its own ports) for the tests of one module."""
    yield from RtpEngineDaemon.running(Path(tmp_path_factory.mktemp("rtpengine")))
