"""Generated reference pages are current; the version is the same everywhere.

docs/reference/cli.md comes from scripts/gen_cli_doc.py (the click commands) and
docs/reference/api.md from scripts/gen_api_doc.py (the OpenAPI document); a change to the
CLI or the API without regenerating the page fails here (as docs/config.md does in
tests/test_config.py).
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from types import ModuleType

import click
import pytest
from docs_support import DOCS, ROOT

import sipedge
from sipedge.cli import main


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    gen = script("gen_cli_doc")
    committed = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert committed == gen.render(), "run: python scripts/gen_cli_doc.py"


def test_cli_reference_names_every_command_and_option() -> None:
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")

    def walk(cmd: click.Command, path: str) -> None:
        assert f"## `{path}`" in text, path
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert any(f"`{o}`" in text for o in p.opts), (path, p.opts)
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")

    walk(main, "sipedge")
    assert "## `sipedge systemd-unit`" in text


def test_api_reference_is_current() -> None:
    pytest.importorskip("fastapi")
    gen = script("gen_api_doc")
    committed = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    assert committed == gen.render(gen.openapi_document()), "run: python scripts/gen_api_doc.py"


def test_api_reference_lists_every_operation() -> None:
    pytest.importorskip("fastapi")
    gen = script("gen_api_doc")
    doc = gen.openapi_document()
    text = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    for path, item in doc["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text


def test_version_is_the_same_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = project["version"]
    assert sipedge.__version__ == version, "sipedge/__init__.py and pyproject.toml differ"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (\d+\.\d+\.\d+)", changelog, re.M)
    assert headings and headings[0] == version, "CHANGELOG.md has no section for " + version
