"""What integrators load stays equal to the contracts: the plain ABI files under abi/ and the
generated tables of docs/integrating.md (scripts/export_abi.py writes both from the build).

The error tables are also checked here from the ABI directly (selectors hashed here, not taken
from the script), and the function table of the doc against the ABI's functions and arguments.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from eth_utils import keccak

from ledger._internal import solc

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "export_abi.py"
DOC = ROOT / "docs" / "integrating.md"
DEPLOYED = ("FulfillmentEscrow", "EscrowBatcher", "EscrowTermsRules", "PanelArbitrator", "EvidenceLog",
            "AdminTimelock")
HOW = "regenerate with `python scripts/export_abi.py` (after a contract change) and commit the result"


@functools.cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_abi", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_abi"] = module
    spec.loader.exec_module(module)
    return module


def _canonical(item: dict[str, Any]) -> str:
    def typ(i: dict[str, Any]) -> str:
        if i["type"].startswith("tuple"):
            return "(" + ",".join(typ(c) for c in i["components"]) + ")" + i["type"][5:]
        return str(i["type"])
    return f"{item['name']}({','.join(typ(i) for i in item['inputs'])})"


def test_checked_in_abi_files_and_doc_tables_equal_the_build() -> None:
    stale = [str(p.relative_to(ROOT)) for p in _script().stale()]
    assert stale == [], f"out of date with the contracts: {', '.join(stale)}; {HOW}"


def test_abi_files_are_bare_arrays_of_the_deployed_contracts() -> None:
    assert sorted(p.stem for p in (ROOT / "abi").glob("*")) == sorted(DEPLOYED)
    artifacts = solc.artifacts()
    for name in DEPLOYED:
        abi = json.loads((ROOT / "abi" / f"{name}.json").read_text(encoding="utf-8"))
        assert isinstance(abi, list), f"abi/{name}.json must be a bare JSON array; {HOW}"
        assert abi == artifacts[name].abi, f"abi/{name}.json differs from the build; {HOW}"
        kinds = {"constructor", "function", "event", "error", "receive", "fallback"}
        assert {i["type"] for i in abi} <= kinds


def _doc_error_tables() -> dict[str, set[tuple[str, str]]]:
    """contract -> {(selector, signature)} as the doc's error tables list them."""
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- generated:errors", 1)[1].split("<!-- /generated:errors -->", 1)[0]
    tables: dict[str, set[tuple[str, str]]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("#### "):
            current = line[5:].strip()
            tables[current] = set()
        elif (m := re.match(r"\| `(0x[0-9a-f]{8})` \| `([^`]+)` \|", line)) and current:
            tables[current].add((m.group(1), m.group(2)))
    return tables


def test_error_tables_in_the_doc_list_every_error_of_the_abi_with_its_selector() -> None:
    expected = {
        name: {("0x" + keccak(text=_canonical(i))[:4].hex(), _canonical(i))
               for i in solc.artifacts()[name].abi if i["type"] == "error"}
        for name in DEPLOYED
    }
    assert _doc_error_tables() == expected, f"docs/integrating.md's error tables are stale; {HOW}"
    assert ("0x856d014f", "EscrowUnexpectedState(bytes32,uint8,uint256)") in expected["FulfillmentEscrow"]


def test_function_table_names_functions_of_the_abi_with_their_arguments() -> None:
    """Each row of the doc's function table is a function of the contract it names, with the
    argument names of the ABI in order."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## The functions an integrator calls", 1)[1].split("\n## ", 1)[0]
    artifacts = solc.artifacts()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 20
    for row in rows:
        for contract, name, args in re.findall(r"`(?:(EscrowBatcher|PanelArbitrator)\.)?(\w+)\(([^)]*)\)`",
                                               row.split("|")[1]):
            abi = artifacts[contract or "FulfillmentEscrow"].abi
            fns = [i for i in abi if i["type"] == "function" and i["name"] == name]
            assert fns, f"{contract or 'FulfillmentEscrow'} has no function {name} (doc: {row[:60]})"
            names = [a.split()[-1] for a in args.split(",") if a.strip()]
            assert names in [[i["name"] for i in f["inputs"]] for f in fns], (name, names)
    documented = set(re.findall(r"^\| `(\w+)\(", table, re.M))
    for needed in ("fund", "ship", "deliver", "confirmDelivery", "release", "refund", "cancel",
                   "requestReturn", "shipReturn", "deliverReturn", "confirmReturn", "settleReturn",
                   "pledge", "openDispute", "submitEvidence", "claimDefault", "timeoutDispute",
                   "depositFor", "withdrawDeposit", "withdraw"):
        assert needed in documented, f"docs/integrating.md does not document {needed}"
