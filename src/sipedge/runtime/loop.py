"""Choose the event loop: uvloop when it is importable, else the standard asyncio loop.

An optional accelerator behind an automatic choice, as uvicorn's ``loops/auto.py`` does
(ARCHITECTURE.md §4.12). Prefer :func:`best_loop_factory` with ``asyncio.Runner``: it
leaves the process-wide event loop policy alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def best_loop_factory() -> tuple[str, LoopFactory]:
    """``("uvloop", uvloop.new_event_loop)`` when uvloop imports, else the asyncio one."""
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


def install_best_loop() -> str:
    """Make uvloop the event loop policy when importable; returns "uvloop" or "asyncio".

    This changes process-wide state (the event loop policy) for later ``asyncio.run``
    calls; it does nothing when uvloop is missing.
    """
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
