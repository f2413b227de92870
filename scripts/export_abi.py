"""Write what integrators load from the compiled contracts: plain ABI files and the generated
parts of docs/integrating.md.

    python scripts/export_abi.py           regenerate abi/*.json and the generated doc blocks
    python scripts/export_abi.py --check   exit 1 (naming each stale file) if anything differs

Run it after every contract change (tests/contracts/test_abi_export.py fails until you do). The
contracts are compiled (or loaded from the cache under build/) by the project's one compile path,
`ledger._internal.solc`; nothing here runs a compiler of its own.

What it writes:

- ``abi/<Contract>.json`` for each deployed contract: the ABI as a bare JSON array, the form
  ethers (`new Contract(address, abi)`), viem, web3.py, `cast --abi` and block explorers load;
- in docs/integrating.md, between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``:
  ``errors``, every custom error of every deployed contract with its canonical signature, its
  4-byte selector and when it is thrown (the contract's NatSpec); ``bounds``, the constants
  that bound offers and terms, read from the Solidity sources with their values.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: import this checkout's package
    sys.path.insert(0, str(ROOT))

from eth_utils import keccak  # noqa: E402

from ledger._internal import solc  # noqa: E402
from ledger.chain.abi import abi_type  # noqa: E402

#: The contracts `ledger deploy` deploys, in the order the docs list them.
DEPLOYED = ("FulfillmentEscrow", "EscrowBatcher", "EscrowTermsRules", "PanelArbitrator", "EvidenceLog",
            "AdminTimelock")
ABI_DIR = ROOT / "abi"
DOC = ROOT / "docs" / "integrating.md"
REGENERATE = "python scripts/export_abi.py"

#: OpenZeppelin's errors carry their explanation in @dev, which userdoc leaves out.
_LIBRARY_ERRORS = {
    "AccessControlBadConfirmation()": "OpenZeppelin AccessControl: `renounceRole` for another account",
    "AccessControlUnauthorizedAccount(address,bytes32)":
        "OpenZeppelin AccessControl: the caller lacks the role (`DEFAULT_ADMIN_ROLE` = 0x00…00, "
        "`ANCHORER_ROLE` = keccak256(\"ANCHORER_ROLE\"))",
    "ECDSAInvalidSignature()":
        "OpenZeppelin ECDSA: the signature recovers no address (e.g. `v` not 27 or 28)",
    "ECDSAInvalidSignatureLength(uint256)": "OpenZeppelin ECDSA: a carrier signature is not 65 bytes",
    "ECDSAInvalidSignatureS(bytes32)": "OpenZeppelin ECDSA: `s` is in the upper half of the curve order "
                                       "(a malleable signature: use low s)",
    "InvalidShortString()": "OpenZeppelin ShortStrings (EIP-712 name and version; never at run time)",
    "ReentrancyGuardReentrantCall()": "OpenZeppelin ReentrancyGuard: a call re-entered the contract",
    "SafeCastOverflowedUintDowncast(uint8,uint256)":
        "OpenZeppelin SafeCast: an amount does not fit its field",
    "SafeERC20FailedOperation(address)":
        "OpenZeppelin SafeERC20: the token's transfer failed or returned false",
    "StringTooLong(string)": "OpenZeppelin ShortStrings (EIP-712 name and version; never at run time)",
    "StringsInsufficientHexLength(uint256,uint256)": "OpenZeppelin Strings (never at run time)",
}

#: Sources whose constants bound offers and terms (the `bounds` block).
_BOUND_SOURCES = ("contracts/FulfillmentEscrow.sol", "contracts/EscrowTermsRules.sol")
_CONSTANT = re.compile(
    r"^\s*uint\d+\s+(?:public|internal|private)\s+constant\s+((?:MIN|MAX)_[A-Z_]+)\s*=\s*([^;]+);", re.M)
_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}


def abis() -> dict[str, list[dict[str, Any]]]:
    """Each deployed contract's ABI, from the project's compile (cached by content)."""
    artifacts = solc.artifacts()
    return {name: artifacts[name].abi for name in DEPLOYED}


def abi_files() -> dict[Path, str]:
    """abi/<Contract>.json -> its text: the ABI as a bare JSON array."""
    return {ABI_DIR / f"{name}.json": json.dumps(abi, indent=2) + "\n" for name, abi in abis().items()}


def signature(item: dict[str, Any]) -> str:
    """The canonical signature of an ABI error or function: what its selector hashes."""
    return f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"


def selector(item: dict[str, Any]) -> str:
    return "0x" + bytes(keccak(text=signature(item))[:4]).hex()


def _argument(item: dict[str, Any]) -> str:
    internal = str(item.get("internalType", ""))
    shown = internal.split(".")[-1] if internal.startswith("enum ") else abi_type(item)
    return f"{shown} {item['name']}".strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def error_rows(name: str) -> list[tuple[str, str, str, str]]:
    """(selector, canonical signature, named arguments, thrown when) of each error of `name`."""
    art = solc.artifacts()[name]
    notices = art.userdoc.get("errors", {})
    rows = []
    for item in sorted((i for i in art.abi if i["type"] == "error"), key=signature):
        sig = signature(item)
        notice = next((n.get("notice", "") for n in notices.get(sig, [])), "") or _LIBRARY_ERRORS.get(sig, "")
        arguments = ", ".join(_argument(i) for i in item["inputs"])
        rows.append((selector(item), sig, arguments, notice.removeprefix("Thrown ")))
    return rows


def errors_block() -> str:
    """Markdown: one table per deployed contract of every custom error in its ABI."""
    out = []
    for name in DEPLOYED:
        out += [f"#### {name}", "", "| selector | signature | arguments | thrown |",
                "| --- | --- | --- | --- |"]
        out += [f"| `{sel}` | `{sig}` | {_cell(args) or '—'} | {_cell(when) or '—'} |"
                for sel, sig, args, when in error_rows(name)]
        out.append("")
    return "\n".join(out).rstrip("\n")


def _seconds(expr: str) -> int | None:
    m = re.fullmatch(r"\s*([0-9_]+)\s*(\w+)?\s*", expr)
    if m is None or (m.group(2) and m.group(2) not in _UNITS):
        return None
    return int(m.group(1).replace("_", "")) * _UNITS.get(m.group(2) or "seconds", 1)


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"


def bound_rows() -> list[tuple[str, str, str, str]]:
    """(contract, constant, value, meaning) of each MIN_/MAX_ constant of the bounding sources."""
    rows = []
    for unit in _BOUND_SOURCES:
        contract = Path(unit).stem
        for name, expr in _CONSTANT.findall((ROOT / unit).read_text(encoding="utf-8")):
            expr = " ".join(expr.split())
            if name.endswith("_BPS"):
                value = int(expr.replace("_", ""))
                rows.append((contract, name, str(value), f"{value / 100:g} %"))
            elif (secs := _seconds(expr)) is not None:
                rows.append((contract, name, str(secs), _duration(secs)))
            elif name == "MIN_PRICE" and expr == "BPS":
                rows.append((contract, name, "10000", "base units"))
            else:
                raise SystemExit(f"{unit}: cannot evaluate {name} = {expr}: teach scripts/export_abi.py")
    return rows


def bounds_block() -> str:
    out = ["| contract | constant | value | meaning |", "| --- | --- | --- | --- |"]
    out += [f"| {c} | `{n}` | {v} | {m} |" for c, n, v, m in bound_rows()]
    return "\n".join(out)


def generated_blocks() -> dict[str, str]:
    return {"errors": errors_block(), "bounds": bounds_block()}


def fill(doc: str, blocks: dict[str, str]) -> str:
    """`doc` with each generated block replaced by its current text."""
    for name, text in blocks.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} [^\n]*-->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if pattern.search(doc) is None:
            raise SystemExit(f"{DOC.relative_to(ROOT)} has no generated:{name} block")
        doc = pattern.sub(lambda m, text=text: m.group(1) + text + "\n" + m.group(2), doc)
    return doc


def expected_files() -> dict[Path, str]:
    """Every generated file and the text it must have."""
    files = abi_files()
    files[DOC] = fill(DOC.read_text(encoding="utf-8"), generated_blocks())
    return files


def stale() -> list[Path]:
    """The generated files that differ from the compiled contracts (or are missing), and ABI
    files of contracts no longer deployed."""
    expected = expected_files()
    extra = sorted(set(ABI_DIR.glob("*.json")) - set(expected))
    return [p for p, text in expected.items()
            if not p.exists() or p.read_text(encoding="utf-8") != text] + extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = ap.parse_args(argv)
    if args.check:
        outdated = stale()
        for p in outdated:
            print(f"stale: {p.relative_to(ROOT)} (run `{REGENERATE}`)")
        return 1 if outdated else 0
    ABI_DIR.mkdir(exist_ok=True)
    expected = expected_files()
    for path in sorted(set(ABI_DIR.glob("*.json")) - set(expected)):
        path.unlink()
        print(f"removed {path.relative_to(ROOT)}")
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
