"""Configuration: every LEDGER_* variable is declared once, documented, and read only by ledger/config.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger.config import DEFAULT_DATA_DIR, VARIABLES, Settings, settings, variable
from ledger.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _mentioned_anywhere() -> set[str]:
    names: set[str] = set()
    for folder in ("ledger", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"\bLEDGER_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
    names |= set(re.findall(r"\bLEDGER_[A-Z0-9_]+\b", (ROOT / "scripts" / "run").read_text()))
    return names


def test_every_variable_the_code_names_is_declared() -> None:
    declared = {v.name for v in VARIABLES}
    assert _mentioned_anywhere() - declared == set()
    assert len(declared) == len(VARIABLES)


def test_only_the_config_module_reads_the_environment() -> None:
    readers = []
    for path in (ROOT / "ledger").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ|os\.getenv|getenv\(", text) and path.name != "config.py":
            readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_readme_tables_list_every_variable_once(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration, secrets and keys", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(LEDGER_[A-Z0-9_]+)` \| (.+) \|$", section, re.M)
    assert [name for name, _ in rows] == [v.name for v in VARIABLES]
    for (_, text), v in zip(rows, VARIABLES, strict=True):
        assert text.startswith(v.help)


def test_settings_read_set_values_and_treat_empty_as_unset() -> None:
    s = settings({"LEDGER_RPC": "http://127.0.0.1:8545", "LEDGER_HOME": "", "OTHER": "x"})
    assert s.rpc == "http://127.0.0.1:8545" and s.home is None
    assert s.data_dir == DEFAULT_DATA_DIR
    assert settings({"LEDGER_HOME": "/srv/ledger"}).data_dir == Path("/srv/ledger")
    assert settings({}) == Settings()


def test_secrets_never_show_in_the_settings_repr() -> None:
    values = {"LEDGER_MASTER_SECRET": "ab" * 32, "LEDGER_DATA_KEY": "cd" * 32,
              "LEDGER_PRIVATE_KEY": "0x" + "ef" * 32, "LEDGER_KEYSTORE_PASSWORD": "hunter2-hunter2"}
    s = settings(values)
    assert s.master_secret == "ab" * 32
    shown = repr(s) + str(s)
    for value in values.values():
        assert value not in shown
    assert {v.name for v in VARIABLES if v.secret} == set(values)


def test_integer_settings_name_the_variable_not_the_value() -> None:
    assert settings({}).int_value("stateful_steps", 40) == 40
    assert settings({"LEDGER_STATEFUL_STEPS": "7"}).int_value("stateful_steps", 40) == 7
    with pytest.raises(ConfigError, match="LEDGER_STATEFUL_STEPS must be an integer"):
        settings({"LEDGER_STATEFUL_STEPS": "seven"}).int_value("stateful_steps", 40)


def test_key_reference_variables() -> None:
    assert variable("MY_KEY", {"MY_KEY": "0x12"}) == "0x12"
    assert variable("MY_KEY", {"MY_KEY": ""}) is None
    assert variable("MY_KEY", {}) is None
