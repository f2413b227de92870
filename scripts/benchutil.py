"""What every benchmark script does last: write its JSON result and say where."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count()}


def write_results(payload: dict[str, Any], out: str | Path, console: Any, as_json: bool) -> None:
    """Write `payload` to `out` (JSON), report the path, and print it too with --json."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2) + "\n"
    path.write_text(text)
    console.print(f"wrote {path}")
    if as_json:
        print(text, end="")
