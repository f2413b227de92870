"""Compile the project's Solidity sources with a pinned compiler, cached by content.

Compiler choice, in order: ``LEDGER_SOLC`` (path to a native solc), a native ``solc``
on PATH whose version is the pinned one, else the pinned solc-js from npm behind
``scripts/solcjs-adapter.cjs``. All sources, OpenZeppelin's included, are inlined into
the standard-JSON input, so every compiler sees byte-identical input.

Artifacts are cached under ``build/contracts/<key>.json`` where the key hashes the
sources, the pinned compiler version and the settings: a source change recompiles,
nothing else does. {compile_for_analysis} caches the same input's ASTs (what a static
analyser reads) the same way under ``build/analysis/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ledger.config import settings
from ledger.errors import CompileError, ConfigError

SOLC_VERSION = "0.8.37"
EVM_VERSION = "cancun"
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": EVM_VERSION,
    "viaIR": True,  # FulfillmentEscrow exceeds the 24,576-byte code limit without the IR pipeline
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {
        "*": {
            "*": [
                "abi",
                "userdoc",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        },
    },
}

# What static analysis reads: every unit's AST, and each contract's ABI and NatSpec. No code is
# generated, so this compiles in seconds; the other settings are SETTINGS' own.
ANALYSIS_SETTINGS: dict[str, Any] = {
    **SETTINGS,
    "outputSelection": {"*": {"": ["ast"], "*": ["abi", "devdoc", "userdoc"]}},
}

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_IMPORT_RE = re.compile(
    r'^\s*import\s+(?:[^"\';]*?\bfrom\s+)?["\']([^"\']+)["\'](?:\s+as\s+[\w$]+)?\s*;', re.M
)
_VERSION_RE = re.compile(r"Version:\s*(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    runtime_bytecode: bytes
    compiler: str
    userdoc: dict[str, Any] = field(default_factory=dict)  # NatSpec @notice texts, errors included
    # (offset, length) of each immutable in the runtime code: zero here, set at deployment
    immutable_ranges: tuple[tuple[int, int], ...] = ()

    def matches_deployed(self, code: bytes) -> bool:
        """Whether on-chain `code` is this contract's runtime code (immutables aside)."""
        if len(code) != len(self.runtime_bytecode):
            return False
        masked = bytearray(code)
        for start, length in self.immutable_ranges:
            masked[start : start + length] = bytes(length)
        return bytes(masked) == self.runtime_bytecode

    @property
    def runtime_hash(self) -> str:
        """SHA-256 of the runtime bytecode: what a deployment manifest records."""
        return hashlib.sha256(self.runtime_bytecode).hexdigest()


def _node_modules() -> Path:
    return Path(settings().node_modules or PROJECT_ROOT / "node_modules")


def _contracts_dir() -> Path:
    return Path(settings().contracts_dir or PROJECT_ROOT / "contracts")


def _build_dir() -> Path:
    return Path(settings().build_dir or PROJECT_ROOT / "build")


def _resolve(unit: str) -> Path:
    if unit.startswith("@"):
        return _node_modules() / unit
    return _contracts_dir().parent / unit


def collect_sources(root_units: list[str] | None = None) -> dict[str, str]:
    """Every source unit reachable from the project's contracts, keyed by unit name."""
    contracts = _contracts_dir()
    if root_units is None:
        root_units = sorted(
            str(p.relative_to(contracts.parent)).replace(os.sep, "/")
            for p in contracts.rglob("*.sol")
        )
    sources: dict[str, str] = {}
    pending = list(root_units)
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        path = _resolve(unit)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            hint = " (run the README's set-up: npm packages missing?)" if unit.startswith("@") else ""
            raise CompileError(f"source {unit!r} not found at {path}{hint}") from None
        sources[unit] = text
        for imp in _IMPORT_RE.findall(text):
            if imp.startswith("."):
                target = os.path.normpath(os.path.join(os.path.dirname(unit), imp)).replace(
                    os.sep, "/"
                )
            else:
                target = imp
            pending.append(target)
    return sources


def cache_key(sources: dict[str, str], compiler_settings: dict[str, Any] = SETTINGS) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"solc": SOLC_VERSION, "settings": compiler_settings}, sort_keys=True).encode())
    for unit in sorted(sources):
        h.update(unit.encode() + b"\0" + hashlib.sha256(sources[unit].encode()).digest())
    return h.hexdigest()


def _compiler_version(binary: str) -> str | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except OSError:
        return None
    m = _VERSION_RE.search(out)
    return m.group(1) if m else None


@cache
def find_compiler() -> tuple[str, str]:
    """(path to an executable speaking solc's CLI, description). Never downloads."""
    explicit = settings().solc
    if explicit:
        version = _compiler_version(explicit)
        if version != SOLC_VERSION:
            raise ConfigError(
                f"LEDGER_SOLC={explicit} reports version {version}, but {SOLC_VERSION} is pinned"
            )
        return explicit, f"native solc {version} ({explicit})"
    native = shutil.which("solc")
    if native and not _is_solc_select_shim(native) and _compiler_version(native) == SOLC_VERSION:
        return native, f"native solc {SOLC_VERSION} ({native})"
    adapter = PROJECT_ROOT / "scripts" / "solcjs-adapter.cjs"
    if not (_node_modules() / "solc" / "package.json").exists():
        raise ConfigError(
            f"no solc {SOLC_VERSION} found: install a native solc (or set LEDGER_SOLC), "
            "or run the README's set-up so npm installs the pinned solc-js"
        )
    if shutil.which("node") is None:
        raise ConfigError("solc-js needs Node.js (`node`) on PATH")
    return str(adapter), f"solc-js {SOLC_VERSION} via {adapter.name}"


def _is_solc_select_shim(path: str) -> bool:
    """Whether `path` is solc-select's `solc` wrapper (it comes with slither's crytic-compile, so
    the dev virtualenv has one): run without a compiler installed, it downloads one, so it is
    never run to ask its version. A compiler solc-select installed can be named in LEDGER_SOLC."""
    try:
        with open(path, "rb") as f:
            return b"solc_select" in f.read(4096)
    except OSError:
        return False


def _run_compiler(binary: str, standard_input: dict[str, Any]) -> dict[str, Any]:
    import solcx  # py-solc-x drives the compiler; imported late (slow import)

    try:
        out: dict[str, Any] = solcx.compile_standard(
            standard_input, solc_binary=binary, allow_empty=True
        )
    except solcx.exceptions.SolcError as exc:
        raise CompileError(_format_errors(getattr(exc, "stdout_data", "") or str(exc))) from None
    return out


def _format_errors(stdout: str) -> str:
    try:
        data = json.loads(stdout)
    except (TypeError, ValueError):
        return str(stdout)
    return "\n".join(
        e.get("formattedMessage", e.get("message", ""))
        for e in data.get("errors", [])
        if e.get("severity") == "error"
    )


def standard_input(
    sources: dict[str, str], compiler_settings: dict[str, Any] = SETTINGS
) -> dict[str, Any]:
    """The standard-JSON input for `sources` (inlined, sorted by unit name)."""
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.items())},
        "settings": compiler_settings,
    }


def compile_standard(standard_json: dict[str, Any]) -> dict[str, Any]:
    """Run the pinned compiler ({find_compiler}) once on a standard-JSON input; its output.
    Raises CompileError if the compiler is not the pinned version or reports an error."""
    binary, description = find_compiler()
    version = _compiler_version(binary)
    if version != SOLC_VERSION:
        raise CompileError(f"{description} reports version {version}; {SOLC_VERSION} is pinned")
    output = _run_compiler(binary, standard_json)
    problems = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if problems:
        raise CompileError("\n".join(e["formattedMessage"] for e in problems))
    return output


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private temporary name, so processes compiling at once never write the same file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def compile_all(force: bool = False) -> dict[str, Artifact]:
    """Compile (or load from cache) every project contract. Keyed by contract name."""
    sources = collect_sources()
    key = cache_key(sources)
    cache_file = _build_dir() / "contracts" / f"{key}.json"
    if not force and cache_file.exists():
        try:
            return _load(cache_file)
        except (OSError, ValueError, KeyError):
            pass  # a corrupt or truncated cache entry: compile again and replace it
    output = compile_standard(standard_input(sources))
    _, description = find_compiler()
    warnings = [e for e in output.get("errors", []) if e.get("severity") == "warning"]
    artifacts = _project_artifacts(output)
    payload = {
        "key": key,
        "compiler": description,
        "solc_version": SOLC_VERSION,
        "settings": SETTINGS,
        "sources": {u: hashlib.sha256(t.encode()).hexdigest() for u, t in sorted(sources.items())},
        "warnings": [w["formattedMessage"] for w in warnings],
        "contracts": artifacts,
    }
    _write_atomically(cache_file, json.dumps(payload, indent=1, sort_keys=True))
    return _load(cache_file)


def compile_for_analysis(force: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The standard-JSON input of every project source with ANALYSIS_SETTINGS (the ASTs) and the
    pinned compiler's output for it, cached by content under ``build/analysis/<key>.json``."""
    sources = collect_sources()
    standard_json = standard_input(sources, ANALYSIS_SETTINGS)
    cache_file = _build_dir() / "analysis" / f"{cache_key(sources, ANALYSIS_SETTINGS)}.json"
    if not force and cache_file.exists():
        try:
            output: dict[str, Any] = json.loads(cache_file.read_text())
            if "sources" in output:
                return standard_json, output
        except (OSError, ValueError):
            pass  # a corrupt or truncated cache entry: compile again and replace it
    output = compile_standard(standard_json)
    _write_atomically(cache_file, json.dumps(output))
    return standard_json, output


def _project_artifacts(output: dict[str, Any]) -> dict[str, Any]:
    """The compiler output's contracts of this project (not its libraries' units), as cached."""
    artifacts: dict[str, Any] = {}
    project = _contracts_dir().name + "/"  # unit names are relative to the dir's parent
    for unit, contracts in output.get("contracts", {}).items():
        if not unit.startswith(project):
            continue
        for name, data in contracts.items():
            if not data["evm"]["bytecode"]["object"] and not data["abi"]:
                continue
            artifacts[name] = {
                "name": name,
                "source": unit,
                "abi": data["abi"],
                "bytecode": data["evm"]["bytecode"]["object"],
                "runtime_bytecode": data["evm"]["deployedBytecode"]["object"],
                "compiler": f"solc {SOLC_VERSION}",
                "userdoc": data.get("userdoc", {}),
                "immutable_ranges": sorted(
                    (ref["start"], ref["length"])
                    for refs in data["evm"]["deployedBytecode"].get("immutableReferences", {}).values()
                    for ref in refs
                ),
            }
    return artifacts


def _load(path: Path) -> dict[str, Artifact]:
    payload = json.loads(path.read_text())
    return {
        name: Artifact(
            name=name,
            source=a["source"],
            abi=a["abi"],
            bytecode=bytes.fromhex(a["bytecode"]),
            runtime_bytecode=bytes.fromhex(a["runtime_bytecode"]),
            compiler=a["compiler"],
            userdoc=a.get("userdoc", {}),
            immutable_ranges=tuple(tuple(r) for r in a.get("immutable_ranges", ())),
        )
        for name, a in payload["contracts"].items()
    }


@cache
def artifacts() -> dict[str, Artifact]:
    """Process-wide cached artifacts (compiles on first use if needed)."""
    return compile_all()
