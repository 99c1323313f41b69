"""The :class:`~sipedge.mgmt.facade.Management` protocol over a running :class:`App`.

Times of the proxy's clock (``loop.time()``) are turned into Unix time for the API; the
registrar's bindings already use Unix time.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import Counter
from typing import TYPE_CHECKING

from .. import __version__
from ..dialog import Dialog, DialogState, Leg
from ..registrar.binding import Binding
from ..registrar.service import aor_of
from ..sip.errors import ParseError
from ..sip.uri import parse_uri
from . import schemas as s
from .appops import OpsMixin, addr
from .capture import Capture
from .collect import MetricsSnapshot, merged_drops, render
from .facade import Invalid, Unavailable
from .metrics import Traffic
from .monitor import Monitor

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("sipedge.mgmt")


class AppFacade(OpsMixin):
    """Management operations over the services of ``app`` (see the module text)."""

    def __init__(
        self, app: App, traffic: Traffic, monitor: Monitor, capture: Capture | None
    ) -> None:
        self.app = app
        self.traffic = traffic
        self.monitor = monitor
        self.capture = capture
        self.started = time.time()

    # ------------------------------------------------------------------ clocks
    def _now(self) -> float:
        return self.app.loop.time()

    def _wall(self, t: float) -> float:
        """A proxy-clock time as Unix time."""
        return t + (time.time() - self._now())

    # ------------------------------------------------------------------ status
    def health(self) -> s.Health:
        """``draining`` once a graceful stop began."""
        proxy = self.app.proxy
        return s.Health(status="draining" if proxy is not None and proxy.draining else "ok")

    def version(self) -> s.Version:
        """Version, Python, event loop and uptime."""
        module = type(self.app.loop).__module__
        return s.Version(
            version=__version__,
            python=platform.python_version(),
            event_loop="uvloop" if module.startswith("uvloop") else "asyncio",
            started=self.started,
            uptime=time.time() - self.started,
        )

    def _drops(self) -> dict[str, int]:
        counters = self.app.security.counters() if self.app.security is not None else {}
        return merged_drops(self.traffic.drops, counters)

    async def stats(self) -> s.Stats:
        """The overview numbers."""
        app, traffic = self.app, self.traffic
        location = app.location
        nodes = self.relay()
        return s.Stats(
            uptime=time.time() - self.started,
            calls_active=len(app.dialogs),
            calls=dict(app.dialogs.counters),
            registrations=await location.count() if location is not None else 0,
            aors=len(await location.aors()) if location is not None else 0,
            transactions=len(app.layer),
            connections=self._connections(),
            bans=len(self.bans()),
            requests_in=traffic.totals(True, False),
            requests_out=traffic.totals(False, False),
            responses_in=traffic.totals(True, True),
            responses_out=traffic.totals(False, True),
            drops=self._drops(),
            loop_lag_ms=self.monitor.last_lag * 1000.0,
            relay_nodes=len(nodes),
            relay_nodes_up=sum(1 for n in nodes if n.available),
        )

    def _connections(self) -> dict[str, int]:
        return dict(Counter(c.flow.transport for c in self.app.transport.connections()))

    def history(self, seconds: int) -> list[s.HistoryPoint]:
        """The last ``seconds`` samples of the monitor."""
        samples = list(self.monitor.history)[-seconds:] if seconds > 0 else []
        return [
            s.HistoryPoint(
                t=x.t,
                calls_active=x.calls_active,
                calls_started=x.calls_started,
                loop_lag_ms=x.loop_lag * 1000.0,
            )
            for x in samples
        ]

    async def metrics(self) -> str:
        """The Prometheus exposition of every service."""
        app = self.app
        security = app.security
        bans: Counter[str] = Counter(b.reason for b in self.bans())
        sec = security.counters() if security is not None else {}
        location = app.location
        snap = MetricsSnapshot(
            traffic=self.traffic,
            monitor=self.monitor,
            uptime=time.time() - self.started,
            transactions=len(app.layer),
            dialogs={
                st.value: app.dialogs.count(st) for st in DialogState if st.value != "terminated"
            },
            dialog_events=dict(app.dialogs.counters),
            registrations=await location.count() if location is not None else 0,
            aors=len(await location.aors()) if location is not None else 0,
            connections=self._connections(),
            bans=dict(bans),
            ban_events={k[5:]: v for k, v in sec.items() if k.startswith("bans.")},
            security=sec,
            relay=self.relay(),
            capture_messages=len(self.capture) if self.capture is not None else 0,
            capture_bytes=self.capture.size if self.capture is not None else 0,
        )
        return render(snap)

    # ------------------------------------------------------------------ registrations
    def _registration(self, b: Binding, now: float) -> s.Registration:
        return s.Registration(
            aor=b.aor,
            contact=b.contact,
            expires_in=b.remaining(now),
            q=b.q,
            received=b.received,
            transport=b.transport,
            user_agent=b.user_agent,
            instance=b.instance,
            reg_id=b.reg_id,
            registered_at=b.registered_at,
            call_id=b.call_id,
        )

    async def registrations(self, query: str, limit: int) -> list[s.Registration]:
        """Live bindings of the AORs whose key contains ``query`` (case-insensitive)."""
        location = self.app.location
        if location is None:
            return []
        now, q = time.time(), query.lower()
        out: list[s.Registration] = []
        for aor in sorted(await location.aors()):
            if q and q not in aor.lower():
                continue
            for b in await location.lookup(aor):
                if b.is_live(now):
                    out.append(self._registration(b, now))
            if len(out) >= limit:
                break
        return out[:limit]

    def _aor_key(self, aor: str) -> str:
        text = aor if aor.lower().startswith(("sip:", "sips:")) else f"sip:{aor}"
        try:
            return aor_of(parse_uri(text))
        except ParseError as exc:
            raise Invalid(f"not an address of record: {exc.reason}") from None

    async def registration(self, aor: str) -> list[s.Registration]:
        """The live bindings of one AOR."""
        location = self.app.location
        if location is None:
            raise Unavailable("the registrar is disabled")
        now = time.time()
        bindings = await location.lookup(self._aor_key(aor))
        return [self._registration(b, now) for b in bindings if b.is_live(now)]

    async def remove_registration(self, aor: str, contact: str | None) -> int:
        """Remove the binding of ``contact`` (every binding when None) of ``aor``."""
        location = self.app.location
        if location is None:
            raise Unavailable("the registrar is disabled")
        key = self._aor_key(aor)
        bindings = await location.lookup(key)
        keep = [b for b in bindings if contact is not None and b.contact != contact]
        if len(keep) != len(bindings):
            await location.replace(key, keep)
            log.warning(
                "registrations of %s removed by the API (%d)", key, len(bindings) - len(keep)
            )
        return len(bindings) - len(keep)

    # ------------------------------------------------------------------ calls
    def _leg(self, leg: Leg) -> s.Leg:
        flow = leg.flow
        return s.Leg(
            uri=leg.uri,
            tag=leg.tag,
            target=leg.target,
            transport=flow.transport if flow is not None else None,
            remote=addr(flow.remote) if flow is not None else None,
        )

    def _call(self, d: Dialog) -> s.Call:
        wall = self._wall
        return s.Call(
            key=d.key,
            call_id=d.call_id,
            state=d.state.value,
            caller=self._leg(d.caller),
            callee=self._leg(d.callee),
            request_uri=d.request_uri,
            account=d.account,
            created=wall(d.created),
            confirmed_at=wall(d.confirmed_at) if d.confirmed_at is not None else None,
            ended_at=wall(d.ended_at) if d.ended_at is not None else None,
            duration=d.duration(self._now()),
            relay_node=d.relay_node,
            end_reason=d.end_reason,
        )

    def calls(self) -> list[s.Call]:
        """Live dialogs, oldest first."""
        return [self._call(d) for d in self.app.dialogs.active()]

    def recent_calls(self, limit: int) -> list[s.Call]:
        """Ended dialogs, most recent first."""
        return [self._call(d) for d in reversed(self.app.dialogs.recent)][: max(0, limit)]

    def call(self, key: str) -> s.Call | None:
        """A live dialog, else a recently ended one."""
        d = self.app.dialogs.get(key)
        if d is None:
            d = next((x for x in reversed(self.app.dialogs.recent) if x.key == key), None)
        return self._call(d) if d is not None else None

    def end_call(self, key: str) -> bool:
        """BYE both ways for an answered call."""
        proxy = self.app.proxy
        d = self.app.dialogs.get(key)
        if proxy is None or d is None:
            return False
        if d.state is not DialogState.CONFIRMED:
            raise Unavailable(f"the call is {d.state.value}: only answered calls can be ended")
        return proxy.end_dialog(key, "api")
