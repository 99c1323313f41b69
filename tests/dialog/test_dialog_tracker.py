"""The dialog table: life cycle, timers, store mirroring and takeover."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sipedge.dialog import Dialog, DialogState, DialogTracker, Leg, MemoryDialogStore
from sipedge.dialog.tracker import DialogSettings
from sipedge.transport.base import Flow

CALLER = Leg(
    uri="<sip:a@x>;tag=a1",
    tag="a1",
    target="sip:a@10.0.0.1",
    flow=Flow("wss", ("127.0.0.1", 5061), ("10.0.0.1", 40000), 3),
    cseq=1,
    webrtc=True,
)
CALLEE = Leg(uri="<sip:b@y>;tag=b1", tag="b1", target="sip:b@10.0.0.2", route=("<sip:p;lr>",))


def new(call_id: str = "c1", now: float = 0.0) -> Dialog:
    return Dialog(call_id=call_id, caller=CALLER, created=now)


def test_life_cycle_and_lookup_from_either_side() -> None:
    t = DialogTracker()
    d = t.started(new(), 0.0)
    assert t.started(new(), 1.0) is d  # a retransmission keeps the record
    assert t.early("c1;a1", CALLEE) is not None
    assert t.confirmed("c1;a1", CALLEE, 5.0).state is DialogState.CONFIRMED  # type: ignore[union-attr]
    assert t.find("c1", "b1", "a1") is t.find("c1", "a1", "b1") is t.get("c1;a1")
    assert t.count(DialogState.CONFIRMED) == 1
    end = t.ended("c1;a1", "bye", 65.0)
    assert end is not None and end.duration(100.0) == 60.0 and end.end_reason == "bye"
    assert t.ended("c1;a1", "bye", 66.0) is None and len(t) == 0


def test_deadlines() -> None:
    t = DialogTracker(DialogSettings(max_call_duration=30.0, setup_timeout=10.0))
    t.started(new("c1"), 0.0)
    t.started(new("c2"), 0.0)
    t.confirmed("c2;a1", CALLEE, 2.0)
    assert t.get_timer() == 10.0
    [gone] = t.due(10.0)
    assert gone.dialog.call_id == "c1" and not gone.hangup
    assert t.get_timer() == 32.0 and t.due(31.9) == []
    [hung] = t.due(32.0)
    assert hung.hangup and hung.dialog.end_reason == "max duration"
    assert t.get_timer() is None


def test_without_max_duration_an_answered_call_is_forgotten_silently() -> None:
    t = DialogTracker(DialogSettings(idle_timeout=100.0))
    t.started(new(), 0.0)
    t.confirmed("c1;a1", CALLEE, 1.0)
    [e] = t.due(101.0)
    assert not e.hangup and e.dialog.end_reason == "timeout"


def test_store_mirrors_changes_and_a_new_node_adopts_them() -> None:
    async def main() -> None:
        store = MemoryDialogStore()
        tasks: list[asyncio.Future[Any]] = []

        def spawn(aw: Awaitable[Any]) -> None:
            tasks.append(asyncio.ensure_future(aw))

        t = DialogTracker(DialogSettings(max_call_duration=60.0), store=store, spawn=spawn)
        t.started(new("c1"), 0.0)
        t.started(new("c2"), 0.0)
        t.confirmed("c1;a1", CALLEE, 1.0)
        t.ended("c2;a1", "cancel", 2.0)
        await asyncio.gather(*tasks)
        assert set(store.dialogs) == {"c1;a1"}
        other = DialogTracker(DialogSettings(max_call_duration=60.0))
        assert other.adopt(await store.load_all(), 30.0) == 1
        assert other.get_timer() == 61.0
        assert other.get("c1;a1") == t.get("c1;a1")

    asyncio.run(main())


def test_dict_round_trip() -> None:
    d = new().with_(callee=CALLEE, state=DialogState.CONFIRMED, confirmed_at=3.0, media=True)
    data = d.to_dict()
    assert data["key"] == "c1;a1" and data["caller"]["flow"]["transport"] == "wss"
    assert Dialog.from_dict(data) == d


def test_store_writes_stay_in_order_even_when_the_store_is_slow_and_uneven() -> None:
    class UnevenStore(MemoryDialogStore):
        """The first write of each key takes longer than the later ones."""

        def __init__(self) -> None:
            super().__init__()
            self.writes = 0

        async def save(self, dialog: Dialog) -> None:
            self.writes += 1
            await asyncio.sleep(0.02 if dialog.state is DialogState.TRYING else 0)
            await super().save(dialog)

    async def main() -> None:
        store = UnevenStore()
        tasks: list[asyncio.Future[Any]] = []

        def spawn(aw: Awaitable[Any]) -> None:
            tasks.append(asyncio.ensure_future(aw))

        t = DialogTracker(store=store, spawn=spawn)
        t.started(new("c1"), 0.0)
        t.confirmed("c1;a1", CALLEE, 1.0)  # queued while the first write is in flight
        while tasks:
            await tasks.pop(0)
        assert store.dialogs["c1;a1"].state is DialogState.CONFIRMED
        t.ended("c1;a1", "bye", 2.0)
        while tasks:
            await tasks.pop(0)
        assert store.dialogs == {}

    asyncio.run(main())
