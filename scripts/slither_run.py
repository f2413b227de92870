"""Slither over the contracts, through the project's pinned solc-js; findings against the baseline.

crytic-compile cannot run the compiler here: the solc-js adapter takes standard JSON with the
sources inlined and offers no import callback. So the project's own standard-JSON input (every
source reachable from contracts/, OpenZeppelin's included, with solc.SETTINGS) is compiled once
through ledger._internal.solc (ASTs only, cached by content under build/analysis/), and the
output is handed to crytic-compile through a small platform object (CryticCompile accepts one
as its target). Slither then runs all its detectors in process; nothing touches a network.

A finding's identity is its detector and its element (Contract.function, Contract.variable,
Contract.function.local, or a pragma's versions): never line numbers or description text, so it
survives unrelated edits. contracts/slither-baseline.json triages every finding in scope with a
reason, and says what is out of scope (dependencies, test doubles, benchmark baselines).

    python scripts/slither_run.py                  the table of findings in scope, and the verdict
    python scripts/slither_run.py --all            ... and out of scope too
    python scripts/slither_run.py --json OUT       also write every finding and the verdict as JSON
    python scripts/slither_run.py --check          exit 1 unless the verdict is clean (see Verdict)
    python scripts/slither_run.py --write-baseline add new findings with an empty reason (to be
                                                   written by a person) and drop stale ones
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "contracts" / "slither-baseline.json"
BLOCKING = ("High", "Medium")  # a new finding of these impacts fails the check
IMPACT_ORDER = ("High", "Medium", "Low", "Informational", "Optimization")


@dataclass(frozen=True)
class Finding:
    """One slither result, reduced to what the baseline and a reader need."""

    detector: str
    impact: str
    confidence: str
    element: str  # identity within the detector: Contract.function, Contract.var, pragma ^0.8.24
    location: str  # file#first-last line of the element (for reading only)
    description: str  # slither's first line
    in_scope: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.detector, self.element)


@dataclass
class Verdict:
    """The findings against the baseline. Clean unless one of the four lists is non-empty."""

    new_blocking: list[Finding] = field(default_factory=list)  # High/Medium, not in the baseline
    new_other: list[Finding] = field(default_factory=list)  # Low/Informational/Optimization: reported
    stale: list[dict[str, str]] = field(default_factory=list)  # baselined, no longer found
    unexplained: list[dict[str, str]] = field(default_factory=list)  # baselined without a reason
    gaps: list[str] = field(default_factory=list)  # slither could not analyse code in scope

    @property
    def clean(self) -> bool:
        return not (self.new_blocking or self.stale or self.unexplained or self.gaps)

    def problems(self) -> list[str]:
        """One line per reason the check fails, naming the detector and the element."""
        lines = [f"new {f.impact} finding {f.detector} at {f.element} ({f.location}): {f.description}"
                 for f in self.new_blocking]
        lines += [f"stale baseline entry {e['detector']} at {e['element']}: slither no longer reports it"
                  " (remove it from the baseline)" for e in self.stale]
        lines += [f"baseline entry {e['detector']} at {e['element']} has no reason" for e in self.unexplained]
        lines += [f"slither could not analyse code in scope: {g}" for g in self.gaps]
        return lines


# --- Reducing slither's results ---------------------------------------------------------------


def _relative(element: dict[str, Any]) -> str | None:
    """The element's file relative to the project root ('../...' outside it), if it has one."""
    absolute = element.get("source_mapping", {}).get("filename_absolute")
    return os.path.relpath(absolute, ROOT).replace(os.sep, "/") if absolute else None


def in_scope_file(path: str | None, out_of_scope: Iterable[str]) -> bool:
    return path is not None and not path.startswith("../") and not any(
        path.startswith(prefix) for prefix in out_of_scope
    )


def element_name(element: dict[str, Any]) -> str:
    """Contract.function[.local], Contract.variable, Contract: the element's path of names.
    A node (a statement) stands for its function; a pragma for its version constraint."""
    parent = element.get("type_specific_fields", {}).get("parent")
    if element["type"] == "node":
        return element_name(parent) if parent else "(statement)"
    if element["type"] == "pragma":
        return f"pragma {element['name']}"
    return f"{element_name(parent)}.{element['name']}" if parent else str(element["name"])


def reduce_result(result: dict[str, Any], out_of_scope: Iterable[str]) -> Finding:
    """A Finding from one of slither's result dicts. The element is the first one in scope (slither
    lists the subject first); for pragma findings, every in-scope pragma's constraint, sorted."""
    out_of_scope = tuple(out_of_scope)
    elements = result.get("elements") or []
    scoped = [e for e in elements if in_scope_file(_relative(e), out_of_scope)]
    primary = (scoped or elements or [None])[0]
    if primary is None:
        name, location = "(project)", ""
    elif primary["type"] == "pragma":
        versions = {e["name"] for e in (scoped or elements) if e["type"] == "pragma"}
        name = "pragma " + ",".join(sorted(versions))
        location = _location(primary)
    else:
        name, location = element_name(primary), _location(primary)
    return Finding(
        detector=result["check"],
        impact=result["impact"],
        confidence=result["confidence"],
        element=name,
        location=location,
        description=result["description"].strip().splitlines()[0],
        in_scope=bool(scoped),
    )


def _location(element: dict[str, Any]) -> str:
    lines = element.get("source_mapping", {}).get("lines") or []
    span = f"#{lines[0]}-{lines[-1]}" if len(lines) > 1 else f"#{lines[0]}" if lines else ""
    return f"{_relative(element)}{span}"


def gap_in_scope(message: str, out_of_scope: Iterable[str]) -> bool:
    """Whether an analysis error may hide a finding in scope: unless every file it names (slither
    writes them as '(path#lines)') is out of scope, it counts as in scope."""
    out_of_scope = tuple(out_of_scope)
    named = [part.split("#", 1)[0] for part in message.split("(")[1:] if "#" in part.split(")", 1)[0]]
    return not named or any(in_scope_file(path, out_of_scope) for path in named)


# --- The baseline -------------------------------------------------------------------------------


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def judge(findings: list[Finding], baseline: dict[str, Any], gaps: list[str]) -> Verdict:
    """Compare the in-scope findings with the baseline's entries (by detector and element)."""
    entries = baseline.get("findings", [])
    known = {(e["detector"], e["element"]) for e in entries}
    current = {f.key for f in findings if f.in_scope}
    verdict = Verdict()
    reported: set[tuple[str, str]] = set()
    for f in sorted(findings, key=_order):
        if not f.in_scope or f.key in known or f.key in reported:
            continue
        reported.add(f.key)
        (verdict.new_blocking if f.impact in BLOCKING else verdict.new_other).append(f)
    verdict.stale = [e for e in entries if (e["detector"], e["element"]) not in current]
    verdict.unexplained = [e for e in entries if not str(e.get("reason", "")).strip()]
    out_of_scope = baseline.get("out_of_scope", {})
    verdict.gaps = [g for g in gaps if gap_in_scope(g, out_of_scope)]
    return verdict


def updated_baseline(findings: list[Finding], baseline: dict[str, Any]) -> dict[str, Any]:
    """The baseline with every in-scope finding: reasons kept, new entries with an empty reason
    (for a person to fill in: the check fails until then), stale entries dropped."""
    reasons = {(e["detector"], e["element"]): e.get("reason", "") for e in baseline.get("findings", [])}
    entries: dict[tuple[str, str], dict[str, str]] = {}
    for f in sorted(findings, key=_order):
        if f.in_scope and f.key not in entries:
            entries[f.key] = {"detector": f.detector, "element": f.element, "impact": f.impact,
                              "reason": reasons.get(f.key, "")}
    return {**baseline, "findings": list(entries.values())}


def _order(f: Finding) -> tuple[int, str, str]:
    rank = IMPACT_ORDER.index(f.impact) if f.impact in IMPACT_ORDER else len(IMPACT_ORDER)
    return (rank, f.detector, f.element)


# --- Running slither ----------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


def run_slither() -> tuple[list[dict[str, Any]], list[str]]:
    """Slither's raw results over the project's contracts, and the errors it logged while
    analysing (code it could not turn into its IR is not checked by the detectors)."""
    # Late imports: slither and crytic-compile are dev tools, slow to import, and configure logging.
    from crytic_compile import CryticCompile
    from crytic_compile.compilation_unit import CompilationUnit
    from crytic_compile.compiler.compiler import CompilerVersion
    from crytic_compile.platform.abstract_platform import AbstractPlatform
    from crytic_compile.platform.solc_standard_json import parse_standard_json_output
    from crytic_compile.platform.types import Type
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    from ledger._internal import solc
    from ledger.config import settings

    contracts_dir = settings().contracts_dir
    if contracts_dir and Path(contracts_dir).resolve() != (ROOT / "contracts").resolve():
        raise SystemExit(f"this analyses {ROOT / 'contracts'}, but LEDGER_CONTRACTS_DIR={contracts_dir}")
    standard_json, output = solc.compile_for_analysis()
    # No code was generated (ASTs are what slither reads), but crytic-compile expects the fields.
    empty = {"object": "", "sourceMap": ""}
    for contracts in output.get("contracts", {}).values():
        for data in contracts.values():
            data.setdefault("evm", {"bytecode": empty, "deployedBytecode": empty})

    class Precompiled(AbstractPlatform):
        """The project's standard-JSON input, already compiled by the pinned compiler."""

        NAME = "evidence-escrow (pinned solc-js, standard JSON)"
        PROJECT_URL = "https://docs.soliditylang.org/en/latest/using-the-compiler.html"
        TYPE = Type.SOLC_STANDARD_JSON

        def compile(self, crytic_compile: Any, **_kwargs: Any) -> None:
            unit = CompilationUnit(crytic_compile, "contracts")
            optimizer = standard_json["settings"]["optimizer"]
            unit.compiler_version = CompilerVersion(
                compiler="solc", version=solc.SOLC_VERSION,
                optimized=optimizer["enabled"], optimize_runs=optimizer["runs"],
            )
            parse_standard_json_output(output, unit, solc_working_dir=str(ROOT))
            # The source text as compiled, not as it may be on disk by now.
            sources = standard_json["sources"]
            crytic_compile.src_content = {f.absolute: sources[f.used]["content"] for f in unit.filenames}

        def clean(self, **_kwargs: Any) -> None:
            pass

        @staticmethod
        def is_supported(_target: str, **_kwargs: Any) -> bool:
            return False  # never picked by crytic-compile's own detection

        def is_dependency(self, path: str) -> bool:
            return "node_modules" in Path(path).parts

        def _guessed_tests(self) -> list[str]:
            return []

    collect = _Collect()
    logging.getLogger().addHandler(collect)
    try:
        compilation = CryticCompile(Precompiled(str(ROOT)), cwd=str(ROOT))
        # show_ignored_findings: the baseline is the one place findings are triaged, so in-source
        # `slither-disable` comments and a stray slither.db.json hide nothing.
        slither = Slither(compilation, show_ignored_findings=True)
        for name in dir(all_detectors):
            detector = getattr(all_detectors, name)
            if isinstance(detector, type) and issubclass(detector, AbstractDetector):
                slither.register_detector(detector)
        results = [r for per_detector in slither.run_detectors() for r in per_detector]
    finally:
        logging.getLogger().removeHandler(collect)
    return results, collect.messages


# --- Command line -------------------------------------------------------------------------------


def _table(findings: list[Finding], baseline_keys: set[tuple[str, str]]) -> str:
    rows = [("detector", "impact", "confidence", "element", "where", "description", "triaged")]
    for f in sorted(findings, key=_order):
        triaged = "baseline" if f.key in baseline_keys else ("-" if f.in_scope else "out of scope")
        description = f.description if len(f.description) <= 90 else f.description[:87] + "..."
        rows.append((f.detector, f.impact, f.confidence, f.element, f.location, description, triaged))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--json", type=Path, metavar="OUT", help="write findings and verdict as JSON")
    parser.add_argument("--all", action="store_true", help="also list findings out of scope")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the verdict is clean")
    parser.add_argument("--write-baseline", action="store_true",
                        help="add new findings (empty reason) and drop stale ones; keeps reasons")
    args = parser.parse_args(argv)
    baseline_path, json_path = args.baseline.resolve(), args.json.resolve() if args.json else None
    # crytic-compile resolves the compiler's unit names (contracts/..., @openzeppelin/...) from here.
    os.chdir(ROOT)

    baseline = load_baseline(baseline_path)
    from ledger.errors import LedgerError  # after main's path set-up

    try:
        results, errors = run_slither()
    except LedgerError as exc:  # the contracts do not compile, or no pinned compiler
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    findings = [reduce_result(r, baseline.get("out_of_scope", {})) for r in results]
    if args.write_baseline:
        baseline = updated_baseline(findings, baseline)
        baseline_path.write_text(json.dumps(baseline, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verdict = judge(findings, baseline, errors)

    keys = {(e["detector"], e["element"]) for e in baseline.get("findings", [])}
    shown = [f for f in findings if f.in_scope or args.all]
    print(_table(shown, keys))
    hidden = len(findings) - len([f for f in findings if f.in_scope])
    print(f"\n{len(findings)} findings: {len(findings) - hidden} in scope, {hidden} out of scope "
          f"({', '.join(baseline.get('out_of_scope', {}))}){'' if args.all else '; --all lists them'}")
    for message in errors:
        scope = "" if gap_in_scope(message, baseline.get("out_of_scope", {})) else " (out of scope)"
        print(f"analysis error{scope}: {message}")
    for f in verdict.new_other:
        print(f"note: new {f.impact} finding {f.detector} at {f.element} ({f.location}), not in the baseline")
    for line in verdict.problems():
        print(f"FAIL: {line}")
    print("verdict: " + ("clean" if verdict.clean else "NOT clean"))
    if json_path:
        json_path.write_text(json.dumps({
            "findings": [asdict(f) for f in sorted(findings, key=_order)],
            "analysis_errors": errors,
            "verdict": {"clean": verdict.clean, "problems": verdict.problems(),
                        "new_other": [asdict(f) for f in verdict.new_other]},
        }, indent=1))
    return 1 if args.check and not verdict.clean else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # ledger, when run from a checkout without installing it
    sys.exit(main())
