"""The ``sipedge`` command line: ``sipedge run`` and ``sipedge check``.

``run`` loads the TOML config (command-line options override it), sets up logging and runs
:func:`sipedge.app.serve` on the best event loop available (uvloop when importable).
``check`` validates a config file and prints every problem, one per line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from sipedge import __version__
from sipedge.config import LOG_FORMATS, LOG_LEVELS, Config, ConfigError, load_config
from sipedge.runtime.logs import configure_logging
from sipedge.runtime.loop import best_loop_factory

log = logging.getLogger("sipedge")

_CONFIG_HELP = "TOML configuration file; without it the embedded defaults are used."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="sipedge")
def main() -> None:
    """sipedge: SIP edge proxy."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help=_CONFIG_HELP)
@click.option(
    "--listen",
    multiple=True,
    metavar="PROTO:HOST:PORT",
    help="Listen here instead of server.listen (repeatable); IPv6 as udp:[::1]:5060.",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), help="Overrides server.log_level.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="Overrides server.log_format.")
def run(
    config_path: Path | None, listen: Sequence[str], log_level: str | None, log_format: str | None
) -> None:
    """Run the proxy until SIGTERM or SIGINT."""
    overrides: dict[str, Any] = {}
    if listen:
        overrides["server.listen"] = list(listen)
    if log_level is not None:
        overrides["server.log_level"] = log_level
    if log_format is not None:
        overrides["server.log_format"] = log_format
    config = _load_or_exit(config_path, overrides)
    configure_logging(config.server.log_level, config.server.log_format)
    try:
        from sipedge import app  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise click.ClickException(f"the proxy engine cannot be loaded: {exc}") from exc
    loop_name, loop_factory = best_loop_factory()
    log.info("sipedge %s starting on the %s event loop", __version__, loop_name)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            source = None
            if config_path is not None:
                path = config_path

                def source() -> Config:
                    return load_config(path, overrides)

            runner.run(app.serve(config, source=source))
    except KeyboardInterrupt:
        log.info("interrupted")
    except OSError as exc:  # e.g. the address is already in use
        raise click.ClickException(f"cannot run: {exc}") from exc


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help=_CONFIG_HELP)
def check(config_path: Path | None) -> None:
    """Validate a configuration file; list every problem, or summarise it."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem)
        click.echo(f"sipedge: {_count(len(exc.problems), 'problem')} found", err=True)
        raise SystemExit(1) from None
    click.echo(f"{config_path or 'embedded defaults'}: OK")
    for line in summarize(config):
        click.echo(line)


def summarize(config: Config) -> list[str]:
    """A few lines describing ``config``: listeners, domains, routes."""
    lines = ["listeners: " + ", ".join(str(x) for x in config.server.listen)]
    if config.server.domains:
        lines.append("domains: " + ", ".join(config.server.domains))
    lines.append(f"routes: {len(config.proxy.routes)}")
    for route in config.proxy.routes:
        match = [f"domain {route.domain}"] if route.domain else []
        match += [f"user {route.user_prefix}*"] if route.user_prefix else []
        lines.append(f"  {route.name}: {', '.join(match) or 'any'} -> {', '.join(route.to)}")
    if config.proxy.default_upstream:
        lines.append(f"default upstream: {config.proxy.default_upstream}")
    return lines


def _load_or_exit(path: Path | None, overrides: dict[str, Any]) -> Config:
    try:
        return load_config(path, overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        click.echo(
            f"sipedge: {_count(len(exc.problems), 'problem')} in the configuration", err=True
        )
        raise SystemExit(1) from None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _register_groups() -> None:
    from sipedge.cli_cert import cert
    from sipedge.cli_ctl import ctl
    from sipedge.cli_doctor import doctor
    from sipedge.cli_ha import ha
    from sipedge.cli_install import systemd_unit
    from sipedge.cli_tunnel import tunnel
    from sipedge.cli_user import user

    main.add_command(user)
    main.add_command(cert)
    main.add_command(tunnel)
    main.add_command(doctor)
    main.add_command(systemd_unit)
    main.add_command(ctl)
    main.add_command(ha)


_register_groups()
