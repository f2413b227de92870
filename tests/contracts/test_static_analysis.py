"""Static analysis: slither over the contracts (scripts/slither_run.py, through the pinned solc-js)
against the triaged baseline (contracts/slither-baseline.json). A High or Medium finding missing
from the baseline fails, and so does a baseline entry slither no longer reports; Low and
Informational findings missing from it are reported as warnings."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "scripts" / "slither_run.py"


@functools.cache
def _driver() -> ModuleType:
    """The driver as a module, for its pure functions (slither itself is imported only to run)."""
    spec = importlib.util.spec_from_file_location("slither_run", DRIVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["slither_run"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_no_untriaged_finding_and_no_stale_baseline_entry(tmp_path: Path) -> None:
    out = tmp_path / "findings.json"
    proc = subprocess.run(
        [sys.executable, str(DRIVER), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0 and out.exists(), f"the driver failed:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(out.read_text())
    for f in report["verdict"]["new_other"]:
        warnings.warn(f"slither: new {f['impact']} finding {f['detector']} at {f['element']} "
                      f"({f['location']}) is not in the baseline: add it with a reason", stacklevel=1)
    problems = report["verdict"]["problems"]
    assert problems == [], (
        "slither's findings and contracts/slither-baseline.json disagree:\n  " + "\n  ".join(problems)
        + "\n(`python scripts/slither_run.py` shows the table; triage each finding in the baseline)"
    )
    assert any(f["in_scope"] for f in report["findings"])  # the analysis did see the contracts


def test_baseline_entries_are_unique_and_explained() -> None:
    driver = _driver()
    baseline = driver.load_baseline()
    keys = [(e["detector"], e["element"]) for e in baseline["findings"]]
    assert len(keys) == len(set(keys))
    for entry in baseline["findings"]:
        assert entry["impact"] in driver.IMPACT_ORDER, entry
        assert len(entry["reason"].strip()) > 20, f"{entry['detector']} at {entry['element']}: give a reason"
    assert set(baseline["out_of_scope"]) == {"node_modules/", "contracts/test/", "contracts/bench/"}


# --- The driver's rules, on made-up results (no slither run) ---------------------------------------

def _element(
    kind: str, name: str, file: str, lines: list[int], parent: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": kind, "name": name,
        "source_mapping": {"filename_absolute": str(ROOT / file), "lines": lines},
        "type_specific_fields": {},
    }
    if parent:
        element["type_specific_fields"]["parent"] = parent
    return element


def _result(
    check: str, impact: str, elements: list[dict[str, Any]], description: str = "d"
) -> dict[str, Any]:
    return {"check": check, "impact": impact, "confidence": "High", "elements": elements,
            "description": description}


ESCROW = "contracts/FulfillmentEscrow.sol"
OUT_OF_SCOPE = ("node_modules/", "contracts/test/", "contracts/bench/")


def _function(name: str, lines: list[int]) -> dict[str, Any]:
    contract = _element("contract", "FulfillmentEscrow", ESCROW, [1, 2000])
    return _element("function", name, ESCROW, lines, contract)


def test_identity_is_detector_and_element_not_lines_or_text() -> None:
    driver = _driver()
    fn = _function("openDispute", [435, 474])
    local = _element("variable", "opener", ESCROW, [439], fn)
    node = _element("node", "disputeId = arbitrator.createDispute(...)", ESCROW, [465], fn)
    assert driver.reduce_result(_result("x", "Low", [local]), OUT_OF_SCOPE).element == (
        "FulfillmentEscrow.openDispute.opener")
    assert driver.reduce_result(_result("x", "Low", [node]), OUT_OF_SCOPE).element == (
        "FulfillmentEscrow.openDispute")
    # The same finding after an edit moved it and slither worded it differently: same identity.
    moved = driver.reduce_result(_result("x", "Low", [_function("openDispute", [500, 540])], "other"),
                                 OUT_OF_SCOPE)
    assert moved.key == driver.reduce_result(_result("x", "Low", [fn]), OUT_OF_SCOPE).key
    assert moved.location == f"{ESCROW}#500-540"
    # Pragmas: the in-scope constraints, whatever the order of slither's elements.
    pragmas = [_element("pragma", v, f, [2]) for v, f in (
        ("^0.8.20", "node_modules/@openzeppelin/contracts/utils/Math.sol"),
        ("^0.8.24", "contracts/lib/RFC9162.sol"), ("0.8.37", ESCROW))]
    finding = driver.reduce_result(_result("pragma", "Informational", pragmas), OUT_OF_SCOPE)
    assert finding.element == "pragma 0.8.37,^0.8.24" and finding.in_scope
    reordered = driver.reduce_result(_result("pragma", "Informational", pragmas[::-1]), OUT_OF_SCOPE)
    assert reordered.key == finding.key


def test_scope_a_finding_that_names_project_code_is_in_scope() -> None:
    driver = _driver()
    oz = _element("function", "mulDiv", "node_modules/@openzeppelin/contracts/utils/math/Math.sol", [206])
    double = _element("contract", "NoReturnToken", "contracts/test/NoReturnToken.sol", [7, 53])
    assert not driver.reduce_result(_result("incorrect-exp", "High", [oz]), OUT_OF_SCOPE).in_scope
    assert not driver.reduce_result(_result("erc20-interface", "Medium", [double]), OUT_OF_SCOPE).in_scope
    mixed = driver.reduce_result(_result("x", "High", [oz, _function("fund", [229, 252])]), OUT_OF_SCOPE)
    assert mixed.in_scope and mixed.element == "FulfillmentEscrow.fund"
    assert not driver.gap_in_scope(
        "Impossible to generate IR for FulfillmentEscrow._nonReentrantAfter "
        "(node_modules/@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol#69-71): boom", OUT_OF_SCOPE)
    assert driver.gap_in_scope(f"Impossible to generate IR for FulfillmentEscrow.fund ({ESCROW}#229-252)",
                               OUT_OF_SCOPE)
    assert driver.gap_in_scope("Failed to parse something", OUT_OF_SCOPE)  # unattributed: counted


def test_verdict_fails_on_new_high_or_medium_and_on_stale_entries_only() -> None:
    driver = _driver()

    def finding(detector: str, impact: str, element: str, in_scope: bool = True) -> Any:
        return driver.Finding(detector, impact, "High", element, f"{ESCROW}#1", "text", in_scope)

    baseline = {"out_of_scope": dict.fromkeys(OUT_OF_SCOPE, "why"), "findings": [
        {"detector": "timestamp", "element": "FulfillmentEscrow._requireOpen", "impact": "Low",
         "reason": "ok"},
        {"detector": "uninitialized-state", "element": "FulfillmentEscrow._gone", "impact": "High",
         "reason": "ok"},
    ]}
    findings = [
        finding("timestamp", "Low", "FulfillmentEscrow._requireOpen"),
        finding("reentrancy-eth", "High", "FulfillmentEscrow.withdraw"),
        finding("timestamp", "Low", "FulfillmentEscrow._requirePassed"),
        finding("incorrect-exp", "High", "Math.mulDiv", in_scope=False),
    ]
    verdict = driver.judge(findings, baseline, gaps=[])
    assert not verdict.clean
    assert [f.key for f in verdict.new_blocking] == [("reentrancy-eth", "FulfillmentEscrow.withdraw")]
    assert [f.key for f in verdict.new_other] == [("timestamp", "FulfillmentEscrow._requirePassed")]
    assert [e["element"] for e in verdict.stale] == ["FulfillmentEscrow._gone"]
    problems = verdict.problems()
    assert any("reentrancy-eth" in p and "FulfillmentEscrow.withdraw" in p for p in problems)
    assert any("stale" in p and "uninitialized-state" in p and "FulfillmentEscrow._gone" in p
               for p in problems)
    assert len(problems) == 2  # the new Low finding is a note, the dependency's finding out of scope

    # --write-baseline: keeps reasons, adds the new findings unexplained (failing), drops the stale one.
    updated = driver.updated_baseline(findings, baseline)
    assert [(e["element"], e["reason"]) for e in updated["findings"]] == [
        ("FulfillmentEscrow.withdraw", ""), ("FulfillmentEscrow._requireOpen", "ok"),
        ("FulfillmentEscrow._requirePassed", "")]
    again = driver.judge(findings, updated, gaps=[])
    assert not again.new_blocking and not again.stale and len(again.unexplained) == 2 and not again.clean
