"""One registered contact of an address-of-record (RFC 3261 §10.3).

A :class:`Binding` is immutable: a refresh builds a new one. It is kept small because a
registrar holds one per registered device (about 0.8 KB each with the store's indexes at
100k bindings; see ``tests/registrar/test_reg_memory.py``): slotted, no per-binding dict,
the flow kept as plain fields and the AOR, transport, local address and User-Agent shared
between bindings (see :func:`sipedge.registrar.service.apply_register`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..transport.base import Address, Flow


@dataclass(frozen=True, slots=True)
class Binding:
    """An AOR -> contact binding with the flow its REGISTER came on.

    ``aor`` is the normalised ``sip:user@domain`` key; ``contact`` the Contact URI text as
    registered; ``expires_at`` and ``registered_at`` are times of the registrar's clock
    (``registered_at`` is when the binding was first created and survives refreshes).
    ``call_id``/``cseq`` order updates (RFC 3261 §10.3 step 7). ``instance`` is the
    ``+sip.instance`` value as written (quotes included) and ``reg_id`` the ``reg-id``
    (RFC 5626 §4.2); ``path`` the Path values of the REGISTER, top first (RFC 3327 §5.3).
    ``transport``, ``local``, ``remote`` and ``conn_id`` are the fields of the
    :class:`~sipedge.transport.base.Flow` (see :attr:`flow`). ``nat`` is set when the
    REGISTER came from behind a NAT (:mod:`sipedge.nat.detect`): requests then go to that
    flow, not to the Contact, and the 200 reports it as ``received``.

    ``contact_key`` is the Contact URI's comparison key (see
    :func:`sipedge.registrar.match.contact_key`), kept so that a REGISTER can match its
    Contacts against stored bindings without parsing them again; None when unknown (the
    URI is then parsed to compare). It is derived data: not persisted, not compared, not
    shown in ``repr``, and usually the ``contact`` string itself (no extra memory).
    """

    aor: str
    contact: str
    expires_at: float
    q: float = 1.0
    call_id: str = ""
    cseq: int = 0
    instance: str | None = None
    reg_id: int | None = None
    path: tuple[str, ...] = ()
    transport: str = "udp"
    local: Address = ("", 0)
    remote: Address = ("", 0)
    conn_id: int | None = None
    user_agent: str | None = None
    registered_at: float = 0.0
    nat: bool = False
    contact_key: str | None = field(default=None, compare=False, repr=False)

    @property
    def flow(self) -> Flow:
        """The flow the last accepted REGISTER for this binding came on (RFC 5626 §6)."""
        return Flow(self.transport, self.local, self.remote, self.conn_id)

    @property
    def received(self) -> str:
        """The source ``ip:port`` of that REGISTER (``[v6]:port`` for IPv6)."""
        ip, port = self.remote
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    @property
    def reached_by_flow(self) -> bool:
        """Whether requests go over the stored flow rather than to the Contact: a stream
        connection, an RFC 5626 Outbound flow or a NATed client (RFC 5626 §5.3), unless a
        Path names the proxy that does it for us (RFC 3327 §5.3)."""
        return (self.conn_id is not None or self.outbound or self.nat) and not self.path

    @property
    def outbound(self) -> bool:
        """True when the binding is keyed by (instance, reg-id) (RFC 5626 §6)."""
        return self.instance is not None and self.reg_id is not None

    def remaining(self, now: float) -> int:
        """Whole seconds left before expiry, rounded to nearest, at least 0."""
        return max(0, round(self.expires_at - now))

    def is_live(self, now: float) -> bool:
        """A binding lives while ``now < expires_at``; it expires exactly at ``expires_at``."""
        return now < self.expires_at
