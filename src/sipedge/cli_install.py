"""``sipedge systemd-unit``: print a systemd service unit for a system-wide installation.

::

    sipedge systemd-unit | sudo tee /etc/systemd/system/sipedge.service
    sudo systemctl daemon-reload && sudo systemctl enable --now sipedge

The unit runs ``sipedge run`` as an unprivileged user (``sipedge`` by default) whose only
capability is ``CAP_NET_BIND_SERVICE`` (ports below 1024: 443 for WSS, 5060/5061 are
above it anyway), with the conventional layout: configuration in
``/etc/sipedge/sipedge.toml``, state (bindings, subscribers) in ``/var/lib/sipedge``
(``StateDirectory=sipedge``, created and owned by the user). ``ExecStartPre`` refuses to
start on a configuration with problems; ``systemctl reload`` sends SIGHUP (TLS
certificates and the security rule file are read again).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import click

__all__ = ["UnitSettings", "render_unit", "systemd_unit"]

DEFAULT_CONFIG = "/etc/sipedge/sipedge.toml"
STATE_DIR = "/var/lib/sipedge"
CAPABILITY = "CAP_NET_BIND_SERVICE"


@dataclass(frozen=True, slots=True)
class UnitSettings:
    """What varies between installations: the program, its config and its user."""

    executable: str
    config: str = DEFAULT_CONFIG
    user: str = "sipedge"
    group: str = "sipedge"
    description: str = "sipedge SIP edge proxy"


def default_executable() -> str:
    """The absolute path of the ``sipedge`` program of this installation (the script
    beside the running interpreter, as pip and pipx install it), else the interpreter
    itself (then the unit runs ``python -m sipedge``)."""
    beside = Path(sys.executable).parent / "sipedge"
    if beside.is_file():
        return str(beside.absolute())
    return str(Path(sys.executable).absolute())


def _command(executable: str, *args: str) -> str:
    """The command line for ``executable``; a Python interpreter gets ``-m sipedge``."""
    base = [executable]
    if PurePosixPath(executable).name.startswith("python"):
        base += ["-m", "sipedge"]
    return shlex.join([*base, *args])


def render_unit(settings: UnitSettings) -> str:
    """The text of ``sipedge.service`` for ``settings``."""
    exe = settings.executable
    config = settings.config
    # A program installed under /home or /root (pipx for a user) must stay readable.
    home = exe.startswith(("/home/", "/root/"))
    lines = [
        '# sipedge.service, written by "sipedge systemd-unit".',
        "# Install: sipedge systemd-unit | sudo tee /etc/systemd/system/sipedge.service",
        "[Unit]",
        f"Description={settings.description}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"User={settings.user}",
        f"Group={settings.group}",
        f"ExecStartPre={_command(exe, 'check', '--config', config)}",
        f"ExecStart={_command(exe, 'run', '--config', config)}",
        # SIGHUP: reload TLS certificates and the security rule file.
        "ExecReload=/bin/kill -HUP $MAINPID",
        # SIGTERM: refuse new calls, let transactions end (server.shutdown_grace).
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "Restart=on-failure",
        "RestartSec=2",
        "SyslogIdentifier=sipedge",
        # Bindings, subscribers (users.db): /var/lib/sipedge, owned by the user.
        "StateDirectory=sipedge",
        "StateDirectoryMode=0750",
        f"WorkingDirectory={STATE_DIR}",
        "ConfigurationDirectory=sipedge",
        "UMask=0027",
        "LimitNOFILE=65536",
        # Only the capability to bind ports below 1024, nothing else, never more.
        f"AmbientCapabilities={CAPABILITY}",
        f"CapabilityBoundingSet={CAPABILITY}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ProtectHome={'read-only' if home else 'yes'}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


@click.command("systemd-unit")
@click.option(
    "--config",
    "config",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Configuration file the service runs with (an absolute path).",
)
@click.option("--user", default="sipedge", show_default=True, help="Unprivileged user to run as.")
@click.option("--group", help="Its group (default: the user's name).")
@click.option(
    "--executable",
    help="Absolute path of the sipedge program (default: the one of this installation).",
)
def systemd_unit(config: str, user: str, group: str | None, executable: str | None) -> None:
    """Print a systemd unit that runs sipedge unprivileged (only CAP_NET_BIND_SERVICE).

    Configuration in /etc/sipedge, state in /var/lib/sipedge (StateDirectory).
    """
    exe = executable or default_executable()
    for name, value in (("--config", config), ("--executable", exe)):
        if not PurePosixPath(value).is_absolute():
            raise click.BadParameter(f"{value!r} is not an absolute path", param_hint=name)
    if not user or any(c.isspace() for c in user):
        raise click.BadParameter(f"{user!r} is not a user name", param_hint="--user")
    settings = UnitSettings(executable=exe, config=config, user=user, group=group or user)
    click.echo(render_unit(settings), nl=False)
