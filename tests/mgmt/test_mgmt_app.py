"""The API inside a real App (in process, loopback): engine tap, facade over the services,
uvicorn in the same loop, clean stop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sipedge.app import App
from sipedge.config import load_config
from sipedge.runtime.logs import CALL_ID
from sipedge.transport.base import Flow

HOST = "127.0.0.1"


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def request(method: str, port: int, local: int, call_id: str, extra: str = "") -> bytes:
    target = f"sip:{HOST}:{port}"
    to = f"sip:alice@{HOST}:{port}" if method == "REGISTER" else target
    return (
        f"{method} {target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local};rport;branch=z9hG4bK{call_id}{method}\r\n"
        f"Max-Forwards: 70\r\nFrom: <{to}>;tag=f1\r\nTo: <{to}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


async def exchange(sock: socket.socket, data: bytes, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, data, (HOST, port))
    while True:
        answer = await asyncio.wait_for(loop.sock_recv(sock, 65535), 2.0)
        if not answer.startswith(b"SIP/2.0 100"):
            return answer


Scenario = Callable[[App, httpx.AsyncClient, socket.socket, int], Awaitable[None]]


def run_app(tmp_path: Path, scenario: Scenario, web: int | None = None) -> None:
    sip = free_port(socket.SOCK_DGRAM)
    web = web or free_port(socket.SOCK_STREAM)
    path = tmp_path / "sipedge.toml"
    path.write_text(
        f'[server]\nlisten = ["udp:{HOST}:{sip}"]\nstate_dir = "{tmp_path}"\n'
        f"[registrar]\npersist = false\n[api]\nport = {web}\n"
    )
    config = load_config(path)

    async def main() -> None:
        app = App(config)
        await app.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        try:
            async with httpx.AsyncClient(base_url=f"http://{HOST}:{web}") as client:
                await scenario(app, client, sock, sip)
        finally:
            sock.close()
            await app.stop(0.1)

    asyncio.run(main())


def test_traffic_capture_metrics_and_stop(tmp_path: Path) -> None:
    seen: list[tuple[bool, str | None]] = []

    async def scenario(app: App, client: httpx.AsyncClient, sock: socket.socket, sip: int) -> None:
        assert app.mgmt is not None and app.engine.tap is not None
        tap = app.engine.tap
        original = tap.message

        def spy(inbound: bool, data: bytes, flow: Flow) -> None:
            seen.append((inbound, CALL_ID.get()))
            original(inbound, data, flow)

        tap.message = spy  # type: ignore[method-assign]
        local = sock.getsockname()[1]
        answer = await exchange(sock, request("OPTIONS", sip, local, "opt-1"), sip)
        assert answer.startswith(b"SIP/2.0 200")
        stats = (await client.get("/api/v1/stats")).json()
        assert stats["requests_in"] == {"OPTIONS": 1}
        assert stats["responses_out"] == {"200": 1}
        captured = (await client.get("/api/v1/capture/opt-1")).json()
        assert [m["direction"] for m in captured] == ["in", "out"]
        assert captured[0]["dst"] == f"{HOST}:{sip}" and captured[1]["first_line"].startswith(
            "SIP/2.0 200"
        )
        metrics = (await client.get("/metrics")).text
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
        }
        key = ("sipedge_sip_requests_total", (("direction", "in"), ("method", "OPTIONS")))
        assert values[key] == 1
        assert values[("sipedge_registrations", ())] == 0
        version = (await client.get("/api/v1/version")).json()
        assert version["event_loop"] == "asyncio"

    run_app(tmp_path, scenario)
    # The response went out while the engine handled the request: it carried its Call-ID.
    assert seen == [(True, None), (False, "opt-1")]


def test_registrations_bans_log_level_and_reload(tmp_path: Path) -> None:
    async def scenario(app: App, client: httpx.AsyncClient, sock: socket.socket, sip: int) -> None:
        local = sock.getsockname()[1]
        contact = f"Contact: <sip:alice@{HOST}:{local}>;expires=60\r\n"
        answer = await exchange(sock, request("REGISTER", sip, local, "reg-1", contact), sip)
        assert answer.startswith(b"SIP/2.0 200"), answer
        aor = f"sip:alice@{HOST}:{sip}"
        regs = (await client.get("/api/v1/registrations", params={"aor": "alice"})).json()
        assert [r["contact"] for r in regs] == [f"sip:alice@{HOST}:{local}"]
        assert 0 < regs[0]["expires_in"] <= 60
        assert (await client.get(f"/api/v1/registrations/alice@{HOST}:{sip}")).status_code == 200
        gone = await client.delete(f"/api/v1/registrations/{aor}")
        assert gone.json() == {"removed": 1}
        assert (await client.get("/api/v1/registrations")).json() == []

        made = await client.post("/api/v1/bans", json={"ip": "192.0.2.9", "seconds": 30})
        assert made.status_code == 201
        assert app.security is not None and app.security.is_banned("192.0.2.9", app.loop.time())
        trusted = await client.post("/api/v1/bans", json={"ip": HOST})
        assert trusted.status_code == 400 and "never banned" in trusted.json()["detail"]
        assert (await client.delete("/api/v1/bans/192.0.2.9")).status_code == 200
        assert (await client.get("/api/v1/bans")).json() == []

        await client.put("/api/v1/log-level", json={"level": "error"})
        assert (await client.get("/api/v1/log-level")).json() == {"level": "error"}
        report = (await client.post("/api/v1/reload")).json()
        assert report["ok"] and {i["part"] for i in report["items"]} >= {"security rules"}
        assert (await client.delete("/api/v1/calls/none;x")).status_code == 404
        assert (await client.get("/api/v1/calls")).json() == []
        rules = (await client.get("/api/v1/security/rules")).json()
        assert rules["rules"] and rules["dry_run"] is False

    run_app(tmp_path, scenario)


def test_a_busy_api_port_leaves_sip_running(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        results: dict[str, Any] = {}

        async def scenario(
            app: App, client: httpx.AsyncClient, sock: socket.socket, sip: int
        ) -> None:
            results["mgmt"] = app.mgmt
            local = sock.getsockname()[1]
            results["answer"] = await exchange(sock, request("OPTIONS", sip, local, "o2"), sip)

        run_app(tmp_path, scenario, web=port)
    assert results["mgmt"] is None
    assert results["answer"].startswith(b"SIP/2.0 200")
