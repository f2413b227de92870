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


def test_imports_follow_the_layers() -> None:
    """import-linter's contracts in pyproject.toml: layers, and command modules independent."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, _report(proc)
    assert "0 broken" in proc.stdout
