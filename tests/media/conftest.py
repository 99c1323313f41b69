"""Fixtures of the media tests: one real rtpengine for the session (skipped if missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from media_support import RtpEngineDaemon


@pytest.fixture(scope="session")
def rtpengine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpEngineDaemon]:
    """A running rtpengine on loopback; its ng ports as ``.udp``, ``.tcp`` and ``.ws``."""
    yield from RtpEngineDaemon.running(Path(tmp_path_factory.mktemp("rtpengine")))
