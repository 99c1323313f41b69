"""The management API over a fake facade: every endpoint, errors, authentication, OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from mgmt_fake import CALL, EARLY, REG, FakeFacade, SyncClient
from openapi_spec_validator import validate

from sipedge.mgmt.api import ApiSettings, create_api

TOKEN = "t0ken-t0ken-t0ken-t0ken"
LOCAL = "http://127.0.0.1:8080"


@pytest.fixture
def fake() -> FakeFacade:
    return FakeFacade()


@pytest.fixture
def client(fake: FakeFacade) -> Iterator[SyncClient]:
    c = SyncClient(create_api(fake), LOCAL)
    yield c
    c.close()


def openapi_operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, concrete path) of every documented operation."""
    out = []
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        out += [(method.upper(), concrete) for method in item if method != "parameters"]
    return out


def test_openapi_document_is_valid_and_lists_every_operation(client: SyncClient) -> None:
    doc = client.get("/api/openapi.json").json()
    validate(doc)
    paths = set(doc["paths"])
    for expected in (
        "/api/v1/health",
        "/api/v1/version",
        "/api/v1/stats",
        "/api/v1/stats/history",
        "/api/v1/registrations",
        "/api/v1/registrations/{aor}",
        "/api/v1/calls",
        "/api/v1/calls/recent",
        "/api/v1/calls/{key}",
        "/api/v1/bans",
        "/api/v1/bans/{ip}",
        "/api/v1/transports",
        "/api/v1/relay",
        "/api/v1/security/rules",
        "/api/v1/security/rules/reload",
        "/api/v1/reload",
        "/api/v1/log-level",
        "/api/v1/capture",
        "/api/v1/capture/{call_id}",
        "/metrics",
    ):
        assert expected in paths


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health",
        "/api/v1/version",
        "/api/v1/stats",
        "/api/v1/stats/history?seconds=5",
        "/api/v1/transports",
        "/api/v1/relay",
        "/api/v1/calls",
        "/api/v1/calls/recent",
        "/api/v1/bans",
        "/api/v1/security/rules",
        "/api/v1/log-level",
        "/api/v1/registrations",
        "/api/v1/capture",
    ],
)
def test_read_endpoints_answer_json(client: SyncClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")


def test_history_is_bounded_by_seconds(client: SyncClient) -> None:
    assert len(client.get("/api/v1/stats/history?seconds=3").json()) == 3
    assert client.get("/api/v1/stats/history?seconds=0").status_code == 422


def test_metrics_are_prometheus_text(client: SyncClient) -> None:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "sipedge_x 1" in resp.text


def test_registrations_search_show_and_remove(client: SyncClient, fake: FakeFacade) -> None:
    assert client.get("/api/v1/registrations?aor=alice").json()[0]["contact"] == REG.contact
    assert client.get("/api/v1/registrations?aor=nobody").json() == []
    shown = client.get("/api/v1/registrations/alice@example.com")
    assert shown.status_code == 200 and shown.json()[0]["aor"] == REG.aor
    assert client.get("/api/v1/registrations/carol@example.com").status_code == 404
    assert client.get("/api/v1/registrations/no-at-sign").status_code == 400
    gone = client.delete(f"/api/v1/registrations/{REG.aor}", params={"contact": REG.contact})
    assert gone.json() == {"removed": 1}
    assert fake.log == [("remove_registration", (REG.aor, REG.contact))]
    assert client.delete(f"/api/v1/registrations/{REG.aor}").status_code == 404


def test_calls_list_show_and_end(client: SyncClient, fake: FakeFacade) -> None:
    keys = [c["key"] for c in client.get("/api/v1/calls").json()]
    assert keys == [CALL.key, EARLY.key]
    assert client.get(f"/api/v1/calls/{CALL.key}").json()["state"] == "confirmed"
    assert client.get("/api/v1/calls/nope;x").status_code == 404
    assert client.get("/api/v1/calls/recent").json()[0]["end_reason"] == "bye"
    ended = client.delete(f"/api/v1/calls/{CALL.key}")
    assert ended.status_code == 200 and ended.json() == {"key": CALL.key, "ended": True}
    early = client.delete(f"/api/v1/calls/{EARLY.key}")
    assert early.status_code == 409 and "early" in early.json()["detail"]
    assert client.delete("/api/v1/calls/unknown;tag").status_code == 404
    assert ("end_call", CALL.key) in fake.log


def test_call_keys_with_slashes_reach_the_facade(client: SyncClient) -> None:
    # A Call-ID may hold "/" (RFC 3261 §25.1 word): it arrives percent-encoded.
    assert client.delete("/api/v1/calls/a%2Fb;c").status_code == 404


def test_bans_add_list_remove(client: SyncClient, fake: FakeFacade) -> None:
    made = client.post("/api/v1/bans", json={"ip": "203.0.113.7", "seconds": 60})
    assert made.status_code == 201 and made.json()["reason"] == "manual"
    assert [b["ip"] for b in client.get("/api/v1/bans").json()] == ["203.0.113.7"]
    assert client.delete("/api/v1/bans/203.0.113.7").json() == {"removed": 1}
    assert client.delete("/api/v1/bans/203.0.113.7").status_code == 404
    assert client.post("/api/v1/bans", json={"ip": "example.com"}).status_code == 400
    assert client.post("/api/v1/bans", json={"ip": "1.2.3.4", "seconds": 0}).status_code == 422
    fake.security = False
    assert client.post("/api/v1/bans", json={"ip": "1.2.3.4"}).status_code == 409
    assert client.get("/api/v1/security/rules").status_code == 409


def test_rules_reload_and_config_reload(client: SyncClient, fake: FakeFacade) -> None:
    report = client.get("/api/v1/security/rules").json()
    assert report["dry_run"] and report["rules"][0]["hits"] == 2
    assert client.post("/api/v1/security/rules/reload").json()["status"] == "unchanged"
    assert client.post("/api/v1/reload").json()["ok"] is True
    assert ("reload", None) in fake.log


def test_log_level_get_and_set(client: SyncClient) -> None:
    assert client.get("/api/v1/log-level").json() == {"level": "warning"}
    assert client.put("/api/v1/log-level", json={"level": "debug"}).json() == {"level": "debug"}
    assert client.get("/api/v1/log-level").json() == {"level": "debug"}
    assert client.put("/api/v1/log-level", json={"level": "loud"}).status_code == 422


def test_capture_list_and_messages(client: SyncClient) -> None:
    listed = client.get("/api/v1/capture", params={"q": "call-1"}).json()
    assert listed[0]["messages"] == 2
    msgs = client.get("/api/v1/capture/call-1@host").json()
    assert [m["first_line"] for m in msgs] == [
        "INVITE sip:bob@example.com SIP/2.0",
        "SIP/2.0 200 OK",
    ]
    assert client.get("/api/v1/capture/other").status_code == 404


def test_dashboard_is_served_with_a_strict_policy(client: SyncClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<main id="view"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "ladder.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_without_token_only_loopback_hosts_and_same_origin(client: SyncClient) -> None:
    assert client.get("/api/v1/stats", headers={"host": "attacker.example"}).status_code == 403
    assert client.get("/api/v1/stats", headers={"host": "localhost:8080"}).status_code == 200
    cross = client.post("/api/v1/reload", headers={"origin": "http://attacker.example"})
    assert cross.status_code == 403
    same = client.post("/api/v1/reload", headers={"origin": LOCAL})
    assert same.status_code == 200


def test_with_a_token_every_operation_but_health_refuses_without_it(fake: FakeFacade) -> None:
    app = create_api(fake, ApiSettings(token=TOKEN))
    anon = SyncClient(app, "http://192.0.2.10:8080")
    doc = anon.get("/api/openapi.json").json()
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    operations = openapi_operations(doc)
    assert len(operations) > 20
    for method, path in operations:
        resp = anon.request(method, path)
        if path == "/api/v1/health":
            assert resp.status_code == 200
            continue
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.headers["www-authenticate"] == "Bearer"
        wrong = anon.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    authed = SyncClient(app, "http://192.0.2.10:8080", {"Authorization": f"Bearer {TOKEN}"})
    assert authed.get("/api/v1/stats").status_code == 200  # any host name with the token
    assert authed.get("/metrics").status_code == 200
    assert fake.log == []  # nothing ran without the token
    anon.close()
    authed.close()
