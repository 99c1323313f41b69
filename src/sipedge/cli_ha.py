"""``sipedge ha``: high-availability helpers.

``sipedge ha install-agent`` installs the Pacemaker resource agent shipped with sipedge
(package data ``sipedge/ha/ocf/sipedge``) as ``<prefix>/sipedge/sipedge``, where Pacemaker
finds it as ``ocf:sipedge:sipedge``::

    sudo sipedge ha install-agent
    sudo crm_resource --show-metadata ocf:sipedge:sipedge

``--print`` writes the agent to standard output instead.
"""

from __future__ import annotations

import os
import tempfile
from importlib.resources import files
from pathlib import Path

import click

__all__ = ["AGENT_NAME", "DEFAULT_PREFIX", "PROVIDER", "agent_text", "ha", "install_agent"]

DEFAULT_PREFIX = "/usr/lib/ocf/resource.d"
PROVIDER = "sipedge"
AGENT_NAME = "sipedge"


def agent_text() -> str:
    """The OCF resource agent shipped with this installation."""
    return files("sipedge.ha").joinpath("ocf", AGENT_NAME).read_text(encoding="utf-8")


def install_agent(prefix: Path) -> Path:
    """Write the agent to ``prefix/sipedge/sipedge`` (mode 0755, directories created),
    replacing an older copy atomically; return its path. Raises OSError."""
    target = prefix / PROVIDER / AGENT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{AGENT_NAME}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(agent_text())
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@click.group()
def ha() -> None:
    """High availability (Pacemaker/Corosync, Redis-shared state)."""


@ha.command("install-agent")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_PREFIX,
    show_default=True,
    help="OCF resource.d directory; the agent goes to PREFIX/sipedge/sipedge.",
)
@click.option("--print", "print_only", is_flag=True, help="Print the agent instead.")
def install_agent_command(prefix: Path, print_only: bool) -> None:
    """Install the Pacemaker resource agent ocf:sipedge:sipedge."""
    if print_only:
        click.echo(agent_text(), nl=False)
        return
    try:
        target = install_agent(prefix)
    except OSError as exc:
        raise click.ClickException(f"cannot install the agent under {prefix}: {exc}") from exc
    click.echo(f"installed {target} (ocf:{PROVIDER}:{AGENT_NAME})")
