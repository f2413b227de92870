"""The toolchain: the content-addressed compile cache, the compiler's errors, the project's artifacts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger._internal import solc
from ledger.errors import CompileError

# The project dir is deliberately not called "contracts": LEDGER_CONTRACTS_DIR may name any dir.
SRC_DIR = "sol"


A_SOL = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {B} from "./lib/B.sol";

contract A {
    function get() external pure returns (uint256) {
        return B.VALUE;
    }
}
"""


B_SOL = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

library B {
    uint256 internal constant VALUE = 7;
}
"""


def _reset_solc_caches() -> None:
    solc.find_compiler.cache_clear()
    solc.artifacts.cache_clear()


@pytest.fixture
def tiny_project(tmp_path: Path) -> Iterator[Path]:
    """A two-file Solidity project in tmp_path; the compiler caches are reset on both sides
    so that later tests see the project's own contracts again."""
    src = tmp_path / SRC_DIR
    (src / "lib").mkdir(parents=True)
    (src / "A.sol").write_text(A_SOL)
    (src / "lib" / "B.sol").write_text(B_SOL)
    _reset_solc_caches()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LEDGER_CONTRACTS_DIR", str(src))
            mp.setenv("LEDGER_BUILD_DIR", str(tmp_path / "build"))
            yield tmp_path
    finally:
        _reset_solc_caches()


def _no_compiler(*args: Any, **kw: Any) -> Any:
    raise AssertionError("the compiler ran although the cache should have been used")


def test_compile_cache_hit_and_invalidation(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[str] = []
    real_run = solc._run_compiler

    def counting_run(binary: str, standard_input: dict[str, Any]) -> dict[str, Any]:
        compiles.append(",".join(sorted(standard_input["sources"])))
        return real_run(binary, standard_input)

    monkeypatch.setattr(solc, "_run_compiler", counting_run)

    sources = solc.collect_sources()
    assert set(sources) == {f"{SRC_DIR}/A.sol", f"{SRC_DIR}/lib/B.sol"}
    key = solc.cache_key(sources)
    cache_file = tiny_project / "build" / "contracts" / f"{key}.json"
    assert not cache_file.exists()

    first = solc.compile_all()
    assert len(compiles) == 1
    assert cache_file.exists()
    assert set(first) == {"A", "B"}
    assert first["A"].source == f"{SRC_DIR}/A.sol"
    assert first["A"].bytecode and first["A"].runtime_bytecode
    assert [f["name"] for f in first["A"].abi] == ["get"]
    payload = json.loads(cache_file.read_text())
    assert payload["key"] == key and payload["solc_version"] == solc.SOLC_VERSION
    assert sorted(payload["sources"]) == sorted(sources)
    assert not list(cache_file.parent.glob("*.tmp"))

    # A cache hit neither runs nor even asks the compiler.
    with monkeypatch.context() as mp:
        mp.setattr(solc, "_run_compiler", _no_compiler)
        mp.setattr(solc, "_compiler_version", _no_compiler)
        mp.setattr(solc, "find_compiler", _no_compiler)
        assert solc.compile_all() == first
        assert solc.artifacts() == first  # the process-wide cache reads the same file

    # Editing only the imported file changes the key and recompiles.
    (tiny_project / SRC_DIR / "lib" / "B.sol").write_text(B_SOL.replace("= 7;", "= 8;"))
    key2 = solc.cache_key(solc.collect_sources())
    assert key2 != key
    second = solc.compile_all()
    assert len(compiles) == 2
    assert (cache_file.parent / f"{key2}.json").exists() and cache_file.exists()
    assert second["A"].runtime_bytecode != first["A"].runtime_bytecode

    # Back to the original content: the old artifacts are served from the cache again.
    (tiny_project / SRC_DIR / "lib" / "B.sol").write_text(B_SOL)
    assert solc.compile_all() == first
    assert len(compiles) == 2

    # A corrupt cache entry (a crash mid-write elsewhere, a full disk) is compiled again.
    cache_file.write_text('{"contracts": {"A": ')
    assert solc.compile_all() == first
    assert len(compiles) == 3
    assert json.loads(cache_file.read_text())["key"] == key


def test_compile_error_names_file_and_line(tiny_project: Path) -> None:
    # A.sol without an SPDX line draws a warning: it must not crowd out the error.
    (tiny_project / SRC_DIR / "A.sol").write_text(
        A_SOL.replace("// SPDX-License-Identifier: MIT\n", "")
    )
    (tiny_project / SRC_DIR / "lib" / "B.sol").write_text(B_SOL.replace("= 7;", "= 7"))
    with pytest.raises(CompileError) as exc:
        solc.compile_all()
    message = exc.value.diagnostics()
    # solc reports the line after the missing semicolon: "--> sol/lib/B.sol:6:1:"
    assert f"{SRC_DIR}/lib/B.sol:6:1" in message
    assert "ParserError" in message
    assert "SPDX" not in message and "Warning" not in message
    assert not list((tiny_project / "build").rglob("*.json"))  # nothing cached


def test_collect_sources_follows_every_import_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "contracts"
    (src / "lib").mkdir(parents=True)
    imports = {
        "Plain.sol": 'import "./lib/P.sol";',
        "Named.sol": 'import {N} from "./lib/N.sol";',
        "Star.sol": 'import * as S from "./lib/S.sol";',
        "Alias.sol": 'import "./lib/Q.sol" as Q;',
        "Multi.sol": "import {\n    M1,\n    M2\n} from './lib/M.sol';",
        "Abs.sol": 'import {X} from "contracts/lib/X.sol";',
    }
    for name, line in imports.items():
        (src / name).write_text(f"pragma solidity 0.8.37;\n{line}\n")
    for lib in ("P", "N", "S", "Q", "M"):
        (src / "lib" / f"{lib}.sol").write_text('import "../Leaf.sol";\n')
    (src / "lib" / "X.sol").write_text("// x\n")
    (src / "Leaf.sol").write_text("// leaf\n")
    monkeypatch.setenv("LEDGER_CONTRACTS_DIR", str(src))

    sources = solc.collect_sources([f"contracts/{n}" for n in imports])
    expected = {f"contracts/{n}" for n in imports}
    expected |= {f"contracts/lib/{lib}.sol" for lib in ("P", "N", "S", "Q", "M", "X")}
    expected.add("contracts/Leaf.sol")
    assert set(sources) == expected

    # Every reachable file is part of the cache key; unrelated files are not.
    key = solc.cache_key(solc.collect_sources(["contracts/Alias.sol"]))
    (src / "lib" / "P.sol").write_text("// changed\n")
    assert solc.cache_key(solc.collect_sources(["contracts/Alias.sol"])) == key
    (src / "Leaf.sol").write_text("// changed leaf\n")
    assert solc.cache_key(solc.collect_sources(["contracts/Alias.sol"])) != key


def test_cache_key_is_order_independent_and_content_sensitive() -> None:
    a = {"contracts/A.sol": "a", "contracts/B.sol": "b"}
    b = dict(reversed(list(a.items())))
    assert solc.cache_key(a) == solc.cache_key(b)
    assert solc.cache_key(a) != solc.cache_key({**a, "contracts/B.sol": "b "})
    assert solc.cache_key(a) != solc.cache_key({"contracts/A.sol": "a", "contracts/C.sol": "b"})


def test_missing_import_is_a_compile_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "contracts"
    src.mkdir()
    (src / "A.sol").write_text('import {Gone} from "./Gone.sol";\n')
    monkeypatch.setenv("LEDGER_CONTRACTS_DIR", str(src))
    with pytest.raises(CompileError, match="contracts/Gone.sol"):
        solc.collect_sources()


def test_project_artifacts_still_visible() -> None:
    """The fixtures above put the process-wide caches back: the project's contracts load."""
    assert "EvidenceLog" in solc.artifacts()
    assert solc.artifacts()["EvidenceLog"].source == "contracts/EvidenceLog.sol"


def test_solc_select_shim_on_path_is_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """slither's crytic-compile brings solc-select, whose `solc` downloads a compiler when it has
    none: with the dev virtualenv on PATH it must be passed over, not asked its version."""
    ran = tmp_path / "ran"
    shim = tmp_path / "bin" / "solc"
    shim.parent.mkdir()
    shim.write_text(
        "#!/bin/sh\n# from solc_select.__main__ import solc\n"
        f"touch {ran}\necho 'Version: {solc.SOLC_VERSION}'\n"
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("LEDGER_SOLC", raising=False)
    solc.find_compiler.cache_clear()
    try:
        binary, description = solc.find_compiler()
    finally:
        solc.find_compiler.cache_clear()
    assert binary.endswith("solcjs-adapter.cjs") and "solc-js" in description
    assert not ran.exists()


def test_analysis_compile_is_cached_by_content_apart_from_the_artifacts(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile_for_analysis: the same sources and settings but ASTs only, in build/analysis/."""
    standard_json, output = solc.compile_for_analysis()
    assert standard_json["settings"] == solc.ANALYSIS_SETTINGS
    assert {k: v for k, v in standard_json["settings"].items() if k != "outputSelection"} == {
        k: v for k, v in solc.SETTINGS.items() if k != "outputSelection"}
    units = {f"{SRC_DIR}/A.sol", f"{SRC_DIR}/lib/B.sol"}
    assert set(standard_json["sources"]) == set(output["sources"]) == units
    assert output["sources"][f"{SRC_DIR}/A.sol"]["ast"]["nodeType"] == "SourceUnit"
    assert "evm" not in output["contracts"][f"{SRC_DIR}/A.sol"]["A"]  # no code generated
    key = solc.cache_key(solc.collect_sources(), solc.ANALYSIS_SETTINGS)
    assert key != solc.cache_key(solc.collect_sources())
    assert (tiny_project / "build" / "analysis" / f"{key}.json").exists()
    assert not (tiny_project / "build" / "contracts").exists()
    with monkeypatch.context() as mp:  # a cache hit runs nothing
        mp.setattr(solc, "_run_compiler", _no_compiler)
        mp.setattr(solc, "find_compiler", _no_compiler)
        assert solc.compile_for_analysis() == (standard_json, output)
