"""The declared tooling stays clean: ruff over the code and tests, strict mypy over the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m TOOL ...` from the project root, where pyproject.toml configures it."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(proc.args)}\n(exit {proc.returncode})\n{proc.stdout}{proc.stderr}"


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "ledger", "scripts", "tests")
    assert proc.returncode == 0, _report(proc)


def test_mypy_is_clean() -> None:
    # The project's own (gitignored) cache: warm after a developer's `mypy ledger`.
    proc = _run("mypy", "--cache-dir", str(ROOT / ".mypy_cache"), "ledger")
    assert proc.returncode == 0, _report(proc)
