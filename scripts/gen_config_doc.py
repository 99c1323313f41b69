"""Write docs/config.md from the configuration model (sipedge.config).

Usage: .venv/bin/python scripts/gen_config_doc.py [--check]
With --check, write nothing and exit 1 when docs/config.md is not up to date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "config.md"
sys.path.insert(0, str(ROOT / "src"))

from sipedge.config.doc import render_reference  # noqa: E402


def main(argv: list[str]) -> int:
    """Generate (or with ``--check`` verify) docs/config.md."""
    text = render_reference()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date; run: python scripts/gen_config_doc.py")
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
