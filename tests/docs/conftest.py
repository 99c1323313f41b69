"""Markers of the documentation and packaging tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "packaging: builds the wheel and installs it into fresh virtual environments "
        "(offline, bounded: under 60 s in all)",
    )
