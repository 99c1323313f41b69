"""The registrar with NATed clients: bindings keep the flow, targets use it, received."""

from __future__ import annotations

import asyncio

from sipedge.registrar import MemoryLocationStore, Registrar, RegistrarPolicy, apply_register
from sipedge.sip.message import Request
from sipedge.transport.base import Flow

from .support import NATED, request

NOW = 5000.0


def reg(contact: str = "<sip:alice@192.168.1.20:5060>", extra: str = "") -> Request:
    return request(
        method="REGISTER", uri="sip:example.org", contact=contact, extra="Expires: 60\r\n" + extra
    )


def test_natted_binding_reports_received_and_keeps_the_flow() -> None:
    out = apply_register(reg(), [], NATED, NOW, RegistrarPolicy(), nat=True)
    assert out.status == 200 and out.bindings is not None
    (b,) = out.bindings
    assert b.nat and b.flow == NATED and b.reached_by_flow
    assert out.headers == [
        ("Contact", '<sip:alice@192.168.1.20:5060>;expires=60;received="sip:203.0.113.1:40000"')
    ]


def test_public_binding_unchanged() -> None:
    out = apply_register(reg(), [], NATED, NOW, RegistrarPolicy())
    assert out.bindings is not None
    (b,) = out.bindings
    assert not b.nat and not b.reached_by_flow
    assert out.headers == [("Contact", "<sip:alice@192.168.1.20:5060>;expires=60")]


def test_received_shows_the_transport_of_a_stream() -> None:
    tcp = Flow("tcp", NATED.local, ("203.0.113.1", 51000), 12)
    out = apply_register(reg(), [], tcp, NOW, RegistrarPolicy(), nat=True)
    assert out.headers[0][1].endswith(';received="sip:203.0.113.1:51000;transport=tcp"')


def test_targets_go_to_the_flow_unless_a_path_names_the_edge() -> None:
    async def main() -> None:
        registrar = Registrar(MemoryLocationStore(clock=lambda: NOW), clock=lambda: NOW)
        await registrar.register(reg(), NATED, nat=True)
        (t,) = await registrar.targets("sip:bob@example.org")
        assert t.flow == NATED and str(t.uri) == "sip:alice@192.168.1.20:5060"
        with_path = reg("<sip:carol@10.0.0.9>", "Path: <sip:edge.example;lr>\r\n")
        await registrar.register(with_path, NATED, nat=True)
        flows = {str(t.uri): t.flow for t in await registrar.targets("sip:bob@example.org")}
        assert flows["sip:carol@10.0.0.9"] is None  # the edge proxy reaches it
        await registrar.register(reg("<sip:dave@198.51.100.9>"), NATED)
        flows = {str(t.uri): t.flow for t in await registrar.targets("sip:bob@example.org")}
        assert flows["sip:dave@198.51.100.9"] is None

    asyncio.run(main())
