"""The command groups of ``sipedge ctl``: reg, calls, bans, rules, capture."""

from __future__ import annotations

from typing import Any

import click

from sipedge.cli_ctl import Ctl, ago, clock, command, seg
from sipedge.mgmt.client import table


def add_groups(ctl: click.Group) -> None:
    """Attach every group to ``ctl``."""
    for group in (reg, calls, bans, rules, capture):
        ctl.add_command(group)


# ---------------------------------------------------------------------- registrations
@click.group()
def reg() -> None:
    """Registrations: list, show, remove."""


def _regs(d: list[dict[str, Any]]) -> str:
    return table(
        ["aor", "contact", "received", "transport", "expires", "user-agent"],
        [
            (
                r["aor"],
                r["contact"],
                r["received"],
                r["transport"],
                ago(r["expires_in"]),
                r["user_agent"] or "",
            )
            for r in d
        ],
    )


@command(reg, "list")
@click.option("--aor", default="", help="Only AORs containing this text.")
@click.option("--limit", default=1000, show_default=True)
def reg_list(c: Ctl, aor: str, limit: int) -> None:
    """Registered contacts."""
    c.show(c.call("GET", "/api/v1/registrations", aor=aor or None, limit=limit), _regs)


@command(reg, "show")
@click.argument("aor")
def reg_show(c: Ctl, aor: str) -> None:
    """The contacts of one AOR (sip:user@domain or user@domain)."""
    c.show(c.call("GET", f"/api/v1/registrations/{seg(aor)}"), _regs)


@command(reg, "rm")
@click.argument("aor")
@click.option("--contact", help="Remove only this contact URI.")
def reg_rm(c: Ctl, aor: str, contact: str | None) -> None:
    """Remove the contacts of an AOR (or one of them)."""
    data = c.call("DELETE", f"/api/v1/registrations/{seg(aor)}", contact=contact)
    c.show(data, lambda d: f"removed {d['removed']} binding(s)")


# ---------------------------------------------------------------------- calls
@click.group()
def calls() -> None:
    """Calls: list, show, end."""


def _calls(d: list[dict[str, Any]]) -> str:
    return table(
        ["key", "state", "from", "to", "started", "duration", "end"],
        [
            (
                x["key"],
                x["state"],
                x["caller"]["uri"],
                x["request_uri"],
                clock(x["created"]),
                ago(x["duration"]),
                x["end_reason"],
            )
            for x in d
        ],
    )


@command(calls, "list")
@click.option("--recent", is_flag=True, help="Calls that ended lately instead.")
@click.option("--limit", default=100, show_default=True, help="With --recent: how many.")
def calls_list(c: Ctl, recent: bool, limit: int) -> None:
    """Active calls (or, with --recent, ended ones)."""
    if recent:
        c.show(c.call("GET", "/api/v1/calls/recent", limit=limit), _calls)
    else:
        c.show(c.call("GET", "/api/v1/calls"), _calls)


def _key(c: Ctl, key: str) -> str:
    """A call key from a key or a bare Call-ID (when one active call has it)."""
    if ";" in key:
        return key
    found: list[str] = [x["key"] for x in c.call("GET", "/api/v1/calls") if x["call_id"] == key]
    if len(found) != 1:
        raise click.ClickException(f"{len(found)} active calls have Call-ID {key}; give the key")
    return found[0]


@command(calls, "show")
@click.argument("key")
def calls_show(c: Ctl, key: str) -> None:
    """One call by key (call-id;from-tag) or by Call-ID."""
    data = c.call("GET", f"/api/v1/calls/{seg(_key(c, key))}")
    c.show(data, lambda d: table(["key", "value"], [(k, v) for k, v in d.items()]))


@command(calls, "end")
@click.argument("key")
def calls_end(c: Ctl, key: str) -> None:
    """End an answered call with BYE both ways (KEY or Call-ID)."""
    data = c.call("DELETE", f"/api/v1/calls/{seg(_key(c, key))}")
    c.show(data, lambda d: f"ended {d['key']}")


# ---------------------------------------------------------------------- bans
@click.group()
def bans() -> None:
    """Bans: list, add, rm."""


@command(bans, "list")
def bans_list(c: Ctl) -> None:
    """Active bans."""
    c.show(
        c.call("GET", "/api/v1/bans"),
        lambda d: table(
            ["ip", "reason", "expires"], [(b["ip"], b["reason"], ago(b["expires_in"])) for b in d]
        ),
    )


@command(bans, "add")
@click.argument("ip")
@click.option("--seconds", default=3600.0, show_default=True, help="Length of the ban.")
@click.option("--reason", default="manual", show_default=True)
def bans_add(c: Ctl, ip: str, seconds: float, reason: str) -> None:
    """Ban a source address."""
    data = c.call("POST", "/api/v1/bans", {"ip": ip, "seconds": seconds, "reason": reason})
    c.show(data, lambda d: f"banned {d['ip']} for {ago(d['expires_in'])} ({d['reason']})")


@command(bans, "rm")
@click.argument("ip")
def bans_rm(c: Ctl, ip: str) -> None:
    """Lift a ban."""
    c.show(c.call("DELETE", f"/api/v1/bans/{seg(ip)}"), lambda d: f"unbanned {ip}")


# ---------------------------------------------------------------------- security rules
@click.group()
def rules() -> None:
    """Security rules: show (with hits, the dry-run report), reload."""


@command(rules, "show")
def rules_show(c: Ctl) -> None:
    """The rule table, hits per rule, and what dry run would have done."""

    def render(d: dict[str, Any]) -> str:
        head = f"file: {d['file'] or '(shipped rules only)'}  dry run: {d['dry_run']}"
        counters = ", ".join(f"{k}={v}" for k, v in sorted(d["counters"].items())) or "none"
        rows = [
            (
                r["name"],
                r["field"],
                r["match"],
                r["action"],
                "yes" if r["dry_run"] else "",
                r["hits"],
            )
            for r in d["rules"]
        ]
        body = table(["rule", "field", "match", "action", "dry", "hits"], rows)
        return f"{head}\ncounters: {counters}\n{body}"

    c.show(c.call("GET", "/api/v1/security/rules"), render)


@command(rules, "reload")
def rules_reload(c: Ctl) -> None:
    """Re-read the rule file."""
    data = c.call("POST", "/api/v1/security/rules/reload")
    c.show(data, lambda d: f"{d['part']}: {d['status']} {d['detail']}".rstrip())
    if data["status"] == "failed":
        raise SystemExit(1)


# ---------------------------------------------------------------------- capture
@click.group()
def capture() -> None:
    """Captured SIP messages: list calls, show one call's messages."""


@command(capture, "list")
@click.option("--query", "-q", default="", help="Call-ID or start-line text.")
@click.option("--limit", default=50, show_default=True)
def capture_list(c: Ctl, query: str, limit: int) -> None:
    """Call-IDs with captured messages, most recent first."""
    data = c.call("GET", "/api/v1/capture", q=query or None, limit=limit)

    def render(d: list[dict[str, Any]]) -> str:
        rows = [
            (x["call_id"], x["messages"], clock(x["first"]), clock(x["last"]), x["first_line"])
            for x in d
        ]
        return table(["call-id", "messages", "first", "last", "first message"], rows)

    c.show(data, render)


@command(capture, "show")
@click.argument("call_id")
@click.option("--full", is_flag=True, help="Print every message's text too.")
def capture_show(c: Ctl, call_id: str, full: bool) -> None:
    """The messages of one call, in order (a text ladder)."""

    def render(d: list[dict[str, Any]]) -> str:
        lines = []
        for m in d:
            lines.append(f"{clock(m['time'])} {m['src']:>22} -> {m['dst']:<22} {m['first_line']}")
            if full:
                lines.append(m["text"].rstrip() + "\n")
        return "\n".join(lines)

    c.show(c.call("GET", f"/api/v1/capture/{seg(call_id)}"), render)
