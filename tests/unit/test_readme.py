"""The README's command reference is the real `ledger --help`."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.cli.main import build_parser


def test_readme_command_reference_is_current(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "100")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Command reference\n\n```\n(.*?)\n```", readme, re.S)
    assert block, "README.md has no command reference block"
    parser = build_parser()
    assert block.group(1).strip() == parser.format_help().strip(), (
        "README's command reference is stale: paste `COLUMNS=100 ledger --help`"
    )
