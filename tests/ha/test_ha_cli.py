"""``sipedge ha install-agent``: the packaged resource agent, installed under a prefix."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from sipedge.cli import main
from sipedge.cli_ha import agent_text

SOURCE = Path(__file__).resolve().parents[2] / "src" / "sipedge" / "ha" / "ocf" / "sipedge"
PACKAGING = Path(__file__).resolve().parents[2] / "packaging" / "ocf" / "sipedge"


def test_the_packaged_agent_is_the_source_tree_one() -> None:
    text = agent_text()
    assert text == SOURCE.read_text()
    assert text.startswith("#!/bin/sh") and "sipedge_meta_data" in text
    assert PACKAGING.resolve() == SOURCE  # packaging/ocf points at the package data


def test_install_agent_writes_an_executable_under_the_prefix(tmp_path: Path) -> None:
    prefix = tmp_path / "resource.d"
    done = CliRunner().invoke(main, ["ha", "install-agent", "--prefix", str(prefix)])
    assert done.exit_code == 0, done.output
    target = prefix / "sipedge" / "sipedge"
    assert str(target) in done.output
    assert target.read_text() == agent_text()
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o755
    # Installing again replaces an older (here: damaged, read-only) copy, and nothing else
    # is left in the provider directory.
    target.write_text("old")
    target.chmod(0o444)
    again = CliRunner().invoke(main, ["ha", "install-agent", "--prefix", str(prefix)])
    assert again.exit_code == 0, again.output
    assert target.read_text() == agent_text()
    assert [p.name for p in target.parent.iterdir()] == ["sipedge"]


def test_print_writes_the_agent_and_installs_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "resource.d"
    done = CliRunner().invoke(main, ["ha", "install-agent", "--print", "--prefix", str(prefix)])
    assert done.exit_code == 0
    assert done.output == agent_text()
    assert not prefix.exists()


def test_an_unusable_prefix_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = CliRunner().invoke(main, ["ha", "install-agent", "--prefix", str(blocker / "x")])
    assert done.exit_code == 1
    assert "cannot install the agent" in done.output
