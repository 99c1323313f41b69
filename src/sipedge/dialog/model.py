"""The dialog record: what the proxy must remember of a call to relay media for it, end it
on its own (BYE both ways) and show it to operators.

A record is keyed by Call-ID and the caller's From tag (:attr:`Dialog.key`); forked early
dialogs of one call share that record and the first 2xx fixes the callee's tag (a proxy
keeps one confirmed dialog per call, as Kamailio's dialog module does).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..transport.base import Flow


class DialogState(enum.Enum):
    """RFC 3261 §12: early on a provisional with a To tag, confirmed on 2xx."""

    TRYING = "trying"  # INVITE relayed, no dialog-creating response yet
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of the call as seen from the proxy.

    ``uri`` is the name-addr of that side (its From or To value, tag included), ``target``
    its Contact URI (remote target, §12.1), ``route`` the Route values that lead from us
    towards it (our own Record-Route entries excluded), ``flow`` how it reached us (used
    when there is no route and the side sits on its own connection or behind NAT),
    ``cseq`` the highest CSeq it has sent in the dialog, ``webrtc`` whether it talks
    WebSocket (media flags for its leg follow from that).
    """

    uri: str = ""
    tag: str = ""
    target: str = ""
    route: tuple[str, ...] = ()
    flow: Flow | None = None
    cseq: int = 0
    webrtc: bool = False


@dataclass(frozen=True, slots=True)
class Dialog:
    """One INVITE dialog: immutable, updated with :func:`dataclasses.replace`."""

    call_id: str
    caller: Leg
    callee: Leg = field(default_factory=Leg)
    state: DialogState = DialogState.TRYING
    created: float = 0.0
    confirmed_at: float | None = None
    ended_at: float | None = None
    request_uri: str = ""
    account: str = ""
    media: bool = False
    relay_node: str | None = None
    end_reason: str = ""

    @property
    def key(self) -> str:
        """``call-id;from-tag``: unique per call at this proxy."""
        return f"{self.call_id};{self.caller.tag}"

    def duration(self, now: float) -> float:
        """Seconds since the call was answered (0 while it is not)."""
        if self.confirmed_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.confirmed_at)

    def with_(self, **changes: Any) -> Dialog:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for the API and shared stores)."""
        out = asdict(self)
        out["state"] = self.state.value
        out["key"] = self.key
        for side in ("caller", "callee"):
            flow = getattr(self, side).flow
            out[side]["flow"] = None if flow is None else _flow_dict(flow)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dialog:
        """The inverse of :meth:`to_dict`."""
        plain = {k: v for k, v in data.items() if k not in ("caller", "callee", "key", "state")}
        return cls(
            caller=_leg(data["caller"]),
            callee=_leg(data["callee"]),
            state=DialogState(data["state"]),
            **plain,
        )


def _flow_dict(flow: Flow) -> dict[str, Any]:
    return {
        "transport": flow.transport,
        "local": list(flow.local),
        "remote": list(flow.remote),
        "conn_id": flow.conn_id,
    }


def _leg(data: dict[str, Any]) -> Leg:
    raw = data.get("flow")
    flow = None
    if raw is not None:
        flow = Flow(
            raw["transport"],
            (raw["local"][0], int(raw["local"][1])),
            (raw["remote"][0], int(raw["remote"][1])),
            raw.get("conn_id"),
        )
    fields = {k: v for k, v in data.items() if k != "flow"}
    fields["route"] = tuple(fields.get("route", ()))
    return Leg(flow=flow, **fields)
