"""Composition of dialog tracking and the media relay from the config (used by app.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .config import Config
from .dialog import DialogStore, DialogTracker
from .dialog.tracker import DialogSettings
from .media.rtpengine import RelayConfig, RtpEngine
from .media.session import MediaProfiles, MediaSession


@dataclass(slots=True)
class Calls:
    """What the proxy gets for call control: the tracker and, when enabled, the relay."""

    dialogs: DialogTracker
    relay: RtpEngine | None
    media: MediaSession | None


def build_calls(
    c: Config,
    spawn: Callable[[Awaitable[Any]], None],
    store: DialogStore | None = None,
) -> Calls:
    """The dialog tracker and the rtpengine client. ``store`` (a shared one, for HA) gets a
    copy of every dialog change; without one the tracker alone holds them (no second copy)."""
    dialogs = DialogTracker(
        DialogSettings(
            max_call_duration=c.dialog.max_call_duration,
            setup_timeout=c.dialog.setup_timeout,
            idle_timeout=c.dialog.idle_timeout,
        ),
        store=store,
        spawn=spawn,
    )
    if not c.media.enabled:
        return Calls(dialogs, None, None)
    m = c.media
    sets = {"default": list(m.nodes)} | {s.name: list(s.nodes) for s in m.sets}
    relay = RtpEngine(
        RelayConfig(
            sets=sets,
            timeout=m.timeout,
            retransmit=m.retransmit,
            disable_time=m.disable_time,
            ping_interval=m.ping_interval,
        )
    )
    profiles = MediaProfiles.from_config(m.flags, m.webrtc_flags, m.rtp_flags)
    return Calls(dialogs, relay, MediaSession(relay, profiles, spawn))
