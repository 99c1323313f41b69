"""Every configuration in examples/ and every TOML block of docs/*.md validates.

Configuration files go through ``sipedge check`` (in process, with click's runner) or the
config loader; a block that starts with ``# sipedge rule file`` is a security rule file
and goes through the rule-file parser. Every example file is shown by some page.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from docs_support import EXAMPLES, ROOT, Block, code_blocks, doc_pages

from sipedge.cli import main
from sipedge.config import ConfigError, parse_config
from sipedge.security.defaults import parse_rules

RULE_FILE_MARK = "# sipedge rule file"
EXAMPLE_CONFIGS = sorted(EXAMPLES.glob("*.toml"))


def toml_blocks() -> list[Block]:
    return [b for page in doc_pages() for b in code_blocks(page) if b.lang == "toml"]


def test_there_are_examples_and_toml_blocks() -> None:
    names = {p.name for p in EXAMPLE_CONFIGS}
    expected = {"gateway", "nat-phones", "tls-trunk", "remote-rtpengine", "ha-node"}
    assert {f"{n}.toml" for n in expected} <= names
    assert len(toml_blocks()) >= 10


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: p.name)
def test_example_passes_sipedge_check(path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: OK"), result.output


@pytest.mark.parametrize("block", toml_blocks(), ids=lambda b: b.where)
def test_toml_block_of_the_docs_validates(block: Block) -> None:
    if block.text.startswith(RULE_FILE_MARK):
        rules, _settings = parse_rules(block.text, source=block.where)
        assert rules, f"{block.where}: a rule file without rules"
        return
    try:
        parse_config(tomllib.loads(block.text))
    except ConfigError as exc:
        pytest.fail(f"{block.where}: " + "\n".join(exc.problems))


def test_every_example_config_is_shown_in_the_docs() -> None:
    shown = {b.included for page in doc_pages() for b in code_blocks(page) if b.included}
    missing = [p.name for p in EXAMPLE_CONFIGS if p not in shown]
    assert not missing, f"examples not included in any page: {missing}"


def test_a_broken_block_is_caught() -> None:
    """The check above fails on a wrong key (so it can fail at all)."""
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads('[server]\nlisten = ["udp:127.0.0.1:5060"]\nlisen = 1\n'))
    assert any("lisen" in p for p in info.value.problems)


def test_snippet_includes_resolve_to_files() -> None:
    for page in doc_pages():
        text = page.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.strip().startswith("--8<--"):
                target = line.strip().split('"')[1]
                assert (ROOT / target).is_file(), f"{page}: {target} missing"
