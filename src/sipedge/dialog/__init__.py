"""Dialog tracking (RFC 3261 §12): INVITE dialogs the proxy saw being set up.

:class:`Dialog` is one call's record (state, tags, route sets, relay node, times);
:class:`DialogTracker` keeps the live ones in memory, runs the maximum-duration timers and
mirrors every change to a :class:`DialogStore` (in memory by default, Redis for clusters).
"""

from .model import Dialog, DialogState, Leg
from .store import DialogStore, MemoryDialogStore
from .tracker import DialogTracker

__all__ = ["Dialog", "DialogState", "DialogStore", "DialogTracker", "Leg", "MemoryDialogStore"]
