"""``sipedge systemd-unit``: an unprivileged service with only CAP_NET_BIND_SERVICE.

The printed unit is parsed like systemd would read it (key=value lines per section) and
checked key by key; ``systemd-analyze verify`` checks it too when it is available.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sipedge.cli import main
from sipedge.cli_install import UnitSettings, render_unit

EXE = "/opt/sipedge/bin/sipedge"


def unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def printed(*args: str) -> str:
    result = CliRunner().invoke(main, ["systemd-unit", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_unit_runs_unprivileged_with_only_the_bind_capability() -> None:
    service = unit_sections(printed("--executable", EXE))["Service"]
    assert service["User"] == ["sipedge"] and service["Group"] == ["sipedge"]
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert "PermissionsStartOnly" not in service and "ExecStartPre=+" not in printed()
    assert not any(v.startswith(("!", "+")) for k in ("ExecStart", "ExecStartPre")
                   for v in service[k])  # fmt: skip


def test_unit_uses_the_conventional_layout() -> None:
    sections = unit_sections(printed("--executable", EXE))
    service = sections["Service"]
    config = "/etc/sipedge/sipedge.toml"
    assert service["ExecStart"] == [f"{EXE} run --config {config}"]
    assert service["ExecStartPre"] == [f"{EXE} check --config {config}"]
    assert service["StateDirectory"] == ["sipedge"]
    assert service["WorkingDirectory"] == ["/var/lib/sipedge"]
    assert service["ConfigurationDirectory"] == ["sipedge"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # TLS and rules reload
    assert service["KillSignal"] == ["SIGTERM"]  # graceful stop
    assert service["ProtectSystem"] == ["strict"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in sections["Unit"]["After"][0]


def test_options_change_paths_and_user() -> None:
    text = printed(
        "--executable", "/usr/bin/python3", "--config", "/srv/edge.toml", "--user", "voip"
    )
    service = unit_sections(text)["Service"]
    assert service["ExecStart"] == ["/usr/bin/python3 -m sipedge run --config /srv/edge.toml"]
    assert (service["User"], service["Group"]) == (["voip"], ["voip"])
    home = unit_sections(render_unit(UnitSettings("/home/ops/.local/bin/sipedge")))
    assert home["Service"]["ProtectHome"] == ["read-only"]


def test_default_executable_is_this_installation() -> None:
    service = unit_sections(printed())["Service"]
    exe = service["ExecStart"][0].split()[0]
    assert Path(exe).is_absolute()
    assert Path(exe).parent == Path(sys.executable).parent


@pytest.mark.parametrize(
    "args", [["--config", "sipedge.toml"], ["--executable", "bin/sipedge"], ["--user", "a b"]]
)
def test_bad_options_are_refused(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["systemd-unit", *args])
    assert result.exit_code == 2, result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "sipedge"
    target = exe if exe.is_file() else Path(sys.executable)
    unit = tmp_path / "sipedge.service"
    unit.write_text(render_unit(UnitSettings(str(target))))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [line for line in done.stderr.splitlines() if unit.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
