"""Signing keys: key references, development accounts, the operator key from the environment or a keystore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain.keys import (
    DEV_ACCOUNTS,
    dev_keys,
    key_reference_problem,
    load_signer_from_env,
    resolve_signer,
)
from ledger.errors import ConfigError


def test_key_references() -> None:
    assert resolve_signer("dev:0").address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    key = "0x" + "42" * 32
    assert resolve_signer("env:MY_KEY", env={"MY_KEY": key}).key.hex() == key[2:]
    with pytest.raises(ConfigError, match="not set"):
        resolve_signer("env:MISSING", env={})
    with pytest.raises(ConfigError) as err:
        resolve_signer("env:BAD", env={"BAD": "0x1234secret"})
    assert "1234secret" not in str(err.value)
    with pytest.raises(ConfigError, match="dev:N"):
        resolve_signer("dev:x")


@pytest.mark.parametrize(("ref", "reason"), [
    ("0x" + "4c0883a6" * 8, "looks like a raw private key (66 characters): keys never go on the "
                            "command line"),
    ("4c0883a6" * 8, "looks like a raw private key (64 characters)"),
    (" ".join(["abandon"] * 11 + ["about"]), "looks like a mnemonic phrase (12 words)"),
    ("dev:100", "dev:N needs N, a development account number from 0 to 99"),
    ("dev:" + "4c0883a6" * 8, "looks like a raw private key (68 characters)"),
    ("env:" + "4c0883a6" * 8, "looks like a raw private key (68 characters)"),
    ("env:1X", "env:VAR needs the name of an environment variable"),
    ("env:", "env:VAR needs"),
    ("keystore:0x" + "4c0883a6" * 8, "looks like a raw private key (75 characters)"),
    ("keystore:", "keystore:PATH needs"),
    ("dv:1", "not a key reference (4 characters, prefix 'dv'): use dev:N, env:VAR or keystore:PATH"),
    ("hunter2", "not a key reference (7 characters): use dev:N"),
])  # fmt: skip
def test_a_literal_or_mistyped_reference_is_refused_without_repeating_it(ref: str, reason: str) -> None:
    """Whatever was typed where a reference belongs may be a secret: described, never echoed."""
    assert str(key_reference_problem(ref)).startswith(reason)
    with pytest.raises(ConfigError) as err:
        resolve_signer(ref)
    assert str(err.value) == key_reference_problem(ref)
    assert "4c0883a6" not in str(err.value) and "abandon" not in str(err.value)


# anvil's published development accounts (an independent check of the mnemonic derivation)
ANVIL_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ANVIL_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OPERATOR_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


PASSWORD = "correct horse battery staple"


def test_dev_keys_are_anvils_accounts() -> None:
    keys = dev_keys()
    assert len(keys) == DEV_ACCOUNTS
    assert keys[0].address == ANVIL_0
    assert bytes(keys[0].key).hex() == ANVIL_0_KEY[2:]
    assert keys[1].address == ANVIL_1
    assert len({k.address for k in keys}) == DEV_ACCOUNTS
    assert [k.address for k in dev_keys(2)] == [ANVIL_0, ANVIL_1]


def test_signer_from_raw_key() -> None:
    expected = Account.from_key(OPERATOR_KEY).address
    assert load_signer_from_env({"LEDGER_PRIVATE_KEY": OPERATOR_KEY}).address == expected  # type: ignore[union-attr]
    assert load_signer_from_env({"LEDGER_PRIVATE_KEY": OPERATOR_KEY[2:]}).address == expected  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "zz" * 32,
        "0x1234",
        "0x" + "00" * 32,  # zero is not a valid secp256k1 key
        "0x" + "ff" * 32,  # above the group order
        OPERATOR_KEY + "00",
    ],
)
def test_invalid_raw_key_is_not_echoed(bad: str) -> None:
    with pytest.raises(ConfigError, match="LEDGER_PRIVATE_KEY") as exc:
        load_signer_from_env({"LEDGER_PRIVATE_KEY": bad})
    text = exc.value.diagnostics()
    assert bad not in text and bad[2:] not in text and bad[2:18] not in text
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # scrypt with a small n keeps the test fast; the format is the standard one
    ks = Account.encrypt(bytes.fromhex(OPERATOR_KEY[2:]), PASSWORD, kdf="scrypt", iterations=2**10)
    path = tmp_path_factory.mktemp("keystore") / "operator.json"
    path.write_text(json.dumps(ks))
    return path


def test_signer_from_keystore_with_password(keystore: Path) -> None:
    signer = load_signer_from_env(
        {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD": PASSWORD}
    )
    assert signer is not None
    assert signer.address == Account.from_key(OPERATOR_KEY).address
    assert bytes(signer.key).hex() == OPERATOR_KEY[2:]


def test_signer_from_keystore_with_password_file(keystore: Path, tmp_path: Path) -> None:
    pw_file = tmp_path / "password"
    pw_file.write_text(PASSWORD + "\n")  # the usual trailing newline is not part of it
    signer = load_signer_from_env(
        {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD_FILE": str(pw_file)}
    )
    assert signer is not None and signer.address == Account.from_key(OPERATOR_KEY).address


def test_signer_keystore_wrong_or_missing_password(keystore: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="wrong password") as exc:
        load_signer_from_env(
            {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD": "hunter2"}
        )
    assert "hunter2" not in str(exc.value)
    pw_file = tmp_path / "password"
    pw_file.write_text("hunter2\n")
    with pytest.raises(ConfigError, match="wrong password"):
        load_signer_from_env(
            {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD_FILE": str(pw_file)}
        )
    with pytest.raises(ConfigError, match="LEDGER_KEYSTORE_PASSWORD"):
        load_signer_from_env({"LEDGER_KEYSTORE": str(keystore)})
    with pytest.raises(ConfigError, match="cannot read keystore"):
        load_signer_from_env(
            {
                "LEDGER_KEYSTORE": str(tmp_path / "missing.json"),
                "LEDGER_KEYSTORE_PASSWORD": PASSWORD,
            }
        )
    for text in ("{not json", "{}", '{"version": 3}'):
        corrupt = tmp_path / "corrupt.json"
        corrupt.write_text(text)
        with pytest.raises(ConfigError, match="corrupt"):
            load_signer_from_env(
                {"LEDGER_KEYSTORE": str(corrupt), "LEDGER_KEYSTORE_PASSWORD": PASSWORD}
            )
    with pytest.raises(ConfigError, match="cannot read keystore password file"):
        load_signer_from_env(
            {"LEDGER_KEYSTORE": str(keystore),
             "LEDGER_KEYSTORE_PASSWORD_FILE": str(tmp_path / "no-such-password")}
        )
    crlf = tmp_path / "password-crlf"
    crlf.write_bytes(PASSWORD.encode() + b"\r\n")
    signer = load_signer_from_env(
        {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD_FILE": str(crlf)}
    )
    assert signer is not None and signer.address == Account.from_key(OPERATOR_KEY).address


def test_raw_key_takes_precedence_over_keystore(keystore: Path) -> None:
    other = "0x" + "11" * 32
    signer = load_signer_from_env(
        {
            "LEDGER_PRIVATE_KEY": other,
            "LEDGER_KEYSTORE": str(keystore),
            "LEDGER_KEYSTORE_PASSWORD": "x",
        }
    )
    assert signer is not None and signer.address == Account.from_key(other).address


def test_no_signer_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_signer_from_env({}) is None
    assert load_signer_from_env({"LEDGER_PRIVATE_KEY": "", "LEDGER_KEYSTORE": ""}) is None
    for var in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE"):
        monkeypatch.delenv(var, raising=False)
    assert load_signer_from_env() is None
    monkeypatch.setenv("LEDGER_PRIVATE_KEY", OPERATOR_KEY)
    signer = load_signer_from_env()
    assert signer is not None and signer.address == Account.from_key(OPERATOR_KEY).address



def test_a_key_set_as_the_keystore_path_is_not_echoed() -> None:
    with pytest.raises(ConfigError, match="keystore path looks like a raw private key") as err:
        load_signer_from_env({"LEDGER_KEYSTORE": OPERATOR_KEY, "LEDGER_KEYSTORE_PASSWORD": PASSWORD})
    assert OPERATOR_KEY[2:] not in str(err.value)
