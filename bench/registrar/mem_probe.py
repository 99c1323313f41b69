"""Run ``sipedge`` with a memory probe on SIGUSR1 (bench-only wrapper, nothing in src/).

    .venv/bin/python bench/registrar/mem_probe.py run --config sipedge.toml

Same arguments as ``python -m sipedge``. On SIGUSR1 it runs a full garbage collection (the
"settle" before a memory reading) and then writes one JSON object to
``$SIPEDGE_MEMPROBE_OUT`` (default ``mem_probe.json`` in the current directory), replacing
the file atomically:

* ``rss_kb``: VmRSS after the collection; ``gc_objects``: objects the collector tracks
  (those frozen at start-up by sipedge's ``gc.freeze()`` excluded);
* ``pymalloc_used_bytes``/``pymalloc_arena_bytes``: small-object allocator, live blocks and
  arenas held (the difference is free space kept after a peak, e.g. of transactions);
* ``bindings``/``aors``: what the location store holds (found among the live objects);
* ``sample``: an estimate of the Python objects one binding owns (``sys.getsizeof`` summed
  over a sample of AORs, shared objects counted once), split by kind. It excludes malloc
  overhead and free arena space, which the RSS difference includes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

SAMPLE_AORS = 2000


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pymalloc() -> dict[str, int]:
    """pymalloc's own accounting (``sys._debugmallocstats``, written to fd 2 by C code, so
    fd 2 is pointed at a temporary file meanwhile): bytes in allocated blocks (live small
    objects) and bytes held in arenas (``Total``: allocated + free blocks + overhead)."""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile("w+") as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
            tmp.seek(0)
            text = tmp.read()
    finally:
        os.close(saved)
    names = {"# bytes in allocated blocks": "pymalloc_used_bytes", "Total": "pymalloc_arena_bytes"}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        name = names.get(key.strip())
        if sep and name is not None and name not in out:  # the first "Total" is the arenas'
            out[name] = int(value.replace(",", ""))
    return out


def _location_store() -> Any:
    """sipedge's location store, reached through the task that expires its bindings (the
    store itself was created before sipedge's ``gc.freeze()``, so ``gc.get_objects()``
    does not list it, and unfreezing would change what is measured)."""
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        if getattr(coro, "__name__", "") == "_expire_loop" and coro.cr_frame is not None:
            registrar = coro.cr_frame.f_locals.get("registrar")
            return getattr(registrar, "store", None)
    return None


def _kind(obj: object) -> str:
    return type(obj).__name__


def _walk(obj: object, seen: set[int], sizes: dict[str, int]) -> None:
    """Add ``obj`` and the objects under it (tuples, slots of a binding) once each."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    sizes[_kind(obj)] = sizes.get(_kind(obj), 0) + sys.getsizeof(obj)
    if isinstance(obj, tuple):
        for item in obj:
            _walk(item, seen, sizes)
    else:
        for name in getattr(type(obj), "__slots__", ()):
            _walk(getattr(obj, name, None), seen, sizes)


def _sample(store: Any) -> dict[str, Any]:
    """Bytes of Python objects per binding over the first ``SAMPLE_AORS`` AORs, plus each
    AOR's share of the store's dict and expiry heap (list slot + (float, str) tuple)."""
    data: dict[str, Any] = store._data
    heap: list[Any] = store._heap
    seen: set[int] = {id(None), id(True), id(False)}
    sizes: dict[str, int] = {}
    n = 0
    for i, (aor, bindings) in enumerate(data.items()):
        if i >= SAMPLE_AORS:
            break
        _walk(aor, seen, sizes)
        _walk(bindings, seen, sizes)
        n += len(bindings)
    if not n:
        return {}
    per = {k: round(v / n, 1) for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])}
    per["dict slot"] = round(sys.getsizeof(data) / max(len(data), 1), 1)
    per["heap entry"] = round((sys.getsizeof(heap) + 56 * len(heap)) / max(store._count, 1), 1)
    return {"bindings": n, "bytes_per_binding": per, "total": round(sum(per.values()), 1)}


def report(out: Path) -> None:
    """Collect, measure and write the JSON report."""
    gc.collect()
    store = _location_store()
    result: dict[str, Any] = {"rss_kb": _rss_kb(), "gc_objects": len(gc.get_objects())}
    result.update(_pymalloc())
    if store is not None:
        result["bindings"] = store._count
        result["aors"] = len(store._data)
        result["sample"] = _sample(store)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)


def main() -> None:
    """Install the SIGUSR1 probe, then run the sipedge CLI."""
    out = Path(os.environ.get("SIPEDGE_MEMPROBE_OUT", "mem_probe.json"))

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        report(out)

    signal.signal(signal.SIGUSR1, on_usr1)
    from sipedge.cli import main as cli_main

    cli_main(args=sys.argv[1:], prog_name="sipedge")


if __name__ == "__main__":
    main()
