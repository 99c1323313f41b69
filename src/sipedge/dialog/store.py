"""Where dialog records live beyond the process (ARCHITECTURE.md §4.9).

The :class:`~sipedge.dialog.tracker.DialogTracker` is the authority while the process runs;
a store is the copy another node (or this one after a restart) starts from. The protocol is
async so a shared backend (Redis) can implement it.
"""

from __future__ import annotations

from typing import Protocol

from .model import Dialog


class DialogStore(Protocol):
    """Persist dialog records by :attr:`Dialog.key`."""

    async def save(self, dialog: Dialog) -> None:
        """Insert or overwrite ``dialog``."""
        ...

    async def remove(self, key: str) -> None:
        """Forget the dialog ``key`` (no error if absent)."""
        ...

    async def load_all(self) -> list[Dialog]:
        """Every stored dialog (used when a node starts or takes over)."""
        ...


class MemoryDialogStore:
    """The embedded default: a dict (nothing survives the process)."""

    def __init__(self) -> None:
        self.dialogs: dict[str, Dialog] = {}

    async def save(self, dialog: Dialog) -> None:
        self.dialogs[dialog.key] = dialog

    async def remove(self, key: str) -> None:
        self.dialogs.pop(key, None)

    async def load_all(self) -> list[Dialog]:
        return list(self.dialogs.values())
