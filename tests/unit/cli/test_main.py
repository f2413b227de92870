"""The command table: every command's module is imported only when that command runs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ledger.cli.main import COMMANDS, build_parser


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         timeout=60)
    return set(out.stdout.split())


def test_help_loads_no_command_module_and_no_chain_library() -> None:
    loaded = _imported_after("from ledger.cli.main import build_parser\nbuild_parser().format_help()")
    assert not {m for m in loaded if m.startswith("ledger.cli.") and m not in ("ledger.cli.main",)}
    assert not {m for m in loaded if m.split(".")[0] in ("web3", "eth_account", "rich", "cryptography")}


def test_a_command_loads_its_own_module_only() -> None:
    loaded = _imported_after("from ledger.cli.main import build_parser\nbuild_parser('status')")
    commands = {m for m in loaded if m.startswith("ledger.cli.") and m != "ledger.cli.main"}
    assert commands == {"ledger.cli.log", "ledger.cli._common"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_configured_by_its_module(name: str) -> None:
    module, summary = COMMANDS[name]
    assert callable(importlib.import_module(module).configure)
    parser = build_parser(name)
    sub = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001 - argparse has no API for it
    command = sub.choices[name]  # type: ignore[index]
    assert command.description == summary
    assert command.get_default("func") is not None or any(  # a command, or a group of steps
        getattr(a, "choices", None) for a in command._actions if a.dest.endswith("_cmd"))


def test_the_global_options_come_before_the_command() -> None:
    args = build_parser("status").parse_args(["--data-dir", "d", "-vv", "--log-json", "status", "--json"])
    assert (args.data_dir, args.verbose, args.log_json, args.json) == ("d", 2, True, True)


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from ledger import __version__
    from ledger.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"ledger {__version__}"
