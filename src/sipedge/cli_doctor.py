"""``sipedge doctor``: check the configured rtpengine nodes, small and large ng replies.

::

    sipedge doctor -c sipedge.toml
    sipedge doctor --node udp:10.0.0.5:22222 --try tcp:10.0.0.5:22223 --try ws://10.0.0.5:8080/

Prints one verdict per node (and per ``--try`` alternative) and exits 1 when a checked
node is unusable or its large replies are slow or lost; ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from sipedge.config import ConfigError, load_config
from sipedge.media.doctor import DoctorSettings, config_nodes, run_doctor
from sipedge.media.ng import parse_node_spec
from sipedge.runtime.loop import best_loop_factory
from sipedge.sip.errors import ParseError


def _specs(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> list[str]:
    try:
        return [parse_node_spec(v).label for v in value]
    except ParseError as exc:
        raise click.BadParameter(exc.reason, ctx, param) from None


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML configuration: check media.nodes and every media.sets node.",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    callback=_specs,
    metavar="SPEC",
    help="Check this node instead of the configured ones (repeatable).",
)
@click.option(
    "--try",
    "alternatives",
    multiple=True,
    callback=_specs,
    metavar="SPEC",
    help="Also probe this node as an alternative, e.g. tcp:H:P or ws://H:P/.",
)
@click.option(
    "--samples",
    type=click.IntRange(1, 50),
    default=3,
    show_default=True,
    help="Pings and large replies measured per node.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.05, max=30),
    default=1.0,
    show_default=True,
    help="Seconds one ng command may take.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def doctor(
    config_path: Path | None,
    nodes: list[str],
    alternatives: list[str],
    samples: int,
    timeout: float,
    as_json: bool,
) -> None:  # fmt: skip
    """Check each rtpengine node: ping and large-reply (over MTU) round trips.

    Says plainly when large UDP replies are slow or lost (IP fragments delayed or dropped
    on the path) and which TCP or WebSocket node to use instead.
    """
    configured = _configured(config_path) if config_path or not nodes else []
    checked = nodes or configured
    tried = [*alternatives, *(c for c in configured if c not in checked)]
    if not checked:
        raise click.ClickException("no rtpengine nodes to check: give --node or media.nodes")
    settings = DoctorSettings(samples=samples, timeout=timeout)
    _, loop_factory = best_loop_factory()
    with _quiet("sipedge.media"), asyncio.Runner(loop_factory=loop_factory) as runner:
        report = runner.run(run_doctor(checked, tried, settings))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    raise SystemExit(report.exit_code)


def _configured(path: Path | None) -> list[str]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise click.ClickException("the configuration has problems (see above)") from None
    return config_nodes(config.media)


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The client's 'node disabled' warnings are the doctor's findings: keep them off stderr."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
