"""``sipedge ctl``: every management API operation from the command line.

It talks to a running sipedge over HTTP (the ``[api]`` listener): the address and token
come from ``--url``/``--token``, else ``$SIPEDGE_API_URL``/``$SIPEDGE_API_TOKEN``, else the
``[api]`` section of ``--config``, else ``http://127.0.0.1:8080``. Output is a table for
people, or the API's JSON with ``--json`` (before or after the command name).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click

from sipedge.mgmt.client import ApiClient, ApiError, table

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8080"


class Ctl:
    """What every command gets: the client and the output mode."""

    def __init__(self, client: ApiClient, as_json: bool) -> None:
        self.client = client
        self.as_json = as_json

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """One API request; API errors become a one-line error and exit code 1."""
        try:
            return self.client.call(method, path, body, query)
        except ApiError as exc:
            raise click.ClickException(str(exc)) from None

    def show(self, data: Any, render: Callable[[Any], str]) -> None:
        """Print ``data`` as JSON (``--json``) or through ``render``."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, sort_keys=True))
        else:
            click.echo(render(data))


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Ctl).as_json = True


def command(group: click.Group, name: str | None = None) -> Callable[[F], F]:
    """A leaf command of ``group`` that also takes ``--json`` and gets the :class:`Ctl`."""

    def wrap(f: F) -> F:
        opt = click.option(
            "--json",
            is_flag=True,
            expose_value=False,
            callback=_json_flag,
            help="Print the API's JSON instead of a table.",
        )
        return group.command(name)(opt(click.pass_obj(f)))  # type: ignore[return-value]

    return wrap


def seg(text: str) -> str:
    """A path segment, percent-encoded."""
    return quote(text, safe="")


def ago(seconds: float) -> str:
    """A duration, short."""
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def clock(t: float | None) -> str:
    """A Unix time as local HH:MM:SS."""
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def _pairs(data: dict[str, Any]) -> str:
    rows = [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in data.items()]
    return table(["key", "value"], rows)


def _from_config(path: Path | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    from sipedge.config import ConfigError, load_config

    try:
        api = load_config(path).api
    except ConfigError as exc:
        raise click.ClickException(f"{path}: {'; '.join(exc.problems)}") from None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(api.host, api.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{api.port}", api.token or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help=f"API base URL (env SIPEDGE_API_URL; default {DEFAULT_URL}).")
@click.option("--token", help="API bearer token (env SIPEDGE_API_TOKEN).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Take the API address and token from this sipedge config's [api] section.",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per request.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_context
def ctl(
    ctx: click.Context,
    url: str | None,
    token: str | None,
    config_path: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Control a running sipedge through its management API."""
    cfg_url, cfg_token = _from_config(config_path)
    client = ApiClient(
        url=url or os.environ.get("SIPEDGE_API_URL") or cfg_url or DEFAULT_URL,
        token=token or os.environ.get("SIPEDGE_API_TOKEN") or cfg_token or "",
        timeout=timeout,
    )
    ctx.obj = Ctl(client, as_json)


# ---------------------------------------------------------------------- status
@command(ctl)
def health(c: Ctl) -> None:
    """Liveness (no token needed)."""
    c.show(c.call("GET", "/api/v1/health"), lambda d: d["status"])


@command(ctl)
def version(c: Ctl) -> None:
    """Version, Python, event loop and uptime."""
    c.show(c.call("GET", "/api/v1/version"), _pairs)


@command(ctl)
def stats(c: Ctl) -> None:
    """Calls, registrations, transactions, connections, traffic and drops."""
    c.show(c.call("GET", "/api/v1/stats"), _pairs)


@ctl.command()
@click.pass_obj
def metrics(c: Ctl) -> None:
    """The Prometheus metrics text."""
    click.echo(c.call("GET", "/metrics"), nl=False)


@command(ctl)
def transports(c: Ctl) -> None:
    """SIP listeners and open stream connections."""

    def render(d: dict[str, Any]) -> str:
        listeners = table(
            ["transport", "host", "port"],
            [(x["transport"], x["host"], x["port"]) for x in d["listeners"]],
        )
        conns = table(
            ["id", "transport", "local", "remote", "dir", "age", "idle"],
            [
                (
                    x["id"],
                    x["transport"],
                    x["local"],
                    x["remote"],
                    "in" if x["inbound"] else "out",
                    ago(x["age"]),
                    ago(x["idle"]),
                )
                for x in d["connections"]
            ],
        )
        return f"{listeners}\n\n{conns}"

    c.show(c.call("GET", "/api/v1/transports"), render)


@command(ctl)
def relay(c: Ctl) -> None:
    """rtpengine nodes and their health."""
    c.show(
        c.call("GET", "/api/v1/relay"),
        lambda d: table(
            ["node", "up", "rtt ms", "pending", "commands", "timeouts", "failures"],
            [
                (
                    n["label"],
                    "yes" if n["available"] else "no",
                    "-" if n["rtt_ms"] is None else f"{n['rtt_ms']:.1f}",
                    n["pending"],
                    n["commands"],
                    n["timeouts"],
                    n["failures"],
                )
                for n in d
            ],
        ),
    )


@ctl.command("log-level")
@click.argument("level", required=False, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.pass_obj
def log_level(c: Ctl, level: str | None, as_json: bool) -> None:
    """Show the log level, or set it to LEVEL."""
    c.as_json = c.as_json or as_json
    if level is None:
        data = c.call("GET", "/api/v1/log-level")
    else:
        data = c.call("PUT", "/api/v1/log-level", {"level": level})
    c.show(data, lambda d: d["level"])


@command(ctl)
def reload(c: Ctl) -> None:
    """Reload TLS certificates and security rules; say what needs a restart."""
    data = c.call("POST", "/api/v1/reload")
    c.show(
        data,
        lambda d: table(
            ["part", "status", "detail"],
            [(i["part"], i["status"], i["detail"]) for i in d["items"]],
        ),
    )
    if not data["ok"]:
        raise SystemExit(1)


def _register() -> None:
    from sipedge.mgmt.ctl_groups import add_groups

    add_groups(ctl)


_register()
