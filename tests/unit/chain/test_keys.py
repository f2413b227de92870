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
    # a keystore's own password source: what follows '?' may be the password itself
    ("keystore:?password-env=PW", "keystore:PATH needs the path of a keystore file"),
    ("keystore:k.json?hunter2", "keystore:PATH?SOURCE: after '?' comes password-file=FILE or "
                                "password-env=VAR, not 7 other characters"),
    ("keystore:k.json?password=hunter2", "keystore:PATH?password=... is refused: a password never goes"),
    ("keystore:k.json?pasword-file=pw", "keystore:PATH?SOURCE: unknown password source 'pasword-file'"),
    ("keystore:k.json?Hunter2=x", "keystore:PATH?SOURCE: after '?' comes password-file=FILE"),
    ("keystore:k.json?password-file=", "keystore:PATH?password-file=FILE needs the path of a file"),
    ("keystore:k.json?password-env=", "keystore:PATH?password-env=VAR needs the name of an environment"),
    ("keystore:k.json?password-env=1PW", "keystore:PATH?password-env=VAR needs the name"),
    ("keystore:k.json?password-env=ac" + "4c0883a6" * 7 + "4c0883", "keystore:PATH?password-env=: the "
                                                               "value looks like a raw private key"),
])  # fmt: skip
def test_a_literal_or_mistyped_reference_is_refused_without_repeating_it(ref: str, reason: str) -> None:
    """Whatever was typed where a reference belongs may be a secret: described, never echoed."""
    assert str(key_reference_problem(ref)).startswith(reason)
    with pytest.raises(ConfigError) as err:
        resolve_signer(ref)
    assert str(err.value) == key_reference_problem(ref)
    assert "4c0883a6" not in str(err.value) and "abandon" not in str(err.value)
    assert "hunter2" not in str(err.value)


# anvil's published development accounts (an independent check of the mnemonic derivation)
ANVIL_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ANVIL_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OPERATOR_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


PASSWORD = "correct horse battery staple"


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    """A secret file as it should be: readable by its owner only (unless `mode` says otherwise)."""
    path.write_bytes(text.encode())
    path.chmod(mode)
    return path


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
    _private(pw_file, PASSWORD + "\n")  # the usual trailing newline is not part of it
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
    _private(pw_file, "hunter2\n")
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
    with pytest.raises(ConfigError, match="keystore password file .*no-such-password does not exist"):
        load_signer_from_env(
            {"LEDGER_KEYSTORE": str(keystore),
             "LEDGER_KEYSTORE_PASSWORD_FILE": str(tmp_path / "no-such-password")}
        )
    crlf = tmp_path / "password-crlf"
    _private(crlf, PASSWORD + "\r\n")
    signer = load_signer_from_env(
        {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD_FILE": str(crlf)}
    )
    assert signer is not None and signer.address == Account.from_key(OPERATOR_KEY).address


def test_raw_key_and_keystore_both_set_is_refused(keystore: Path) -> None:
    """Which one was meant is not ours to guess (LEDGER_PRIVATE_KEY used to win silently)."""
    other = "0x" + "11" * 32
    with pytest.raises(ConfigError) as err:
        load_signer_from_env(
            {
                "LEDGER_PRIVATE_KEY": other,
                "LEDGER_KEYSTORE": str(keystore),
                "LEDGER_KEYSTORE_PASSWORD": PASSWORD,
            }
        )
    message = str(err.value)
    assert "both LEDGER_PRIVATE_KEY and LEDGER_KEYSTORE are set" in message and "unset one" in message
    assert other[2:] not in message and PASSWORD not in message


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


# --- each keystore reference with its own password source ---------------------------------

PARTY_KEY = "0x" + "5a" * 32
PARTY_PASSWORD = "a different passphrase for the merchant"


@pytest.fixture(scope="module")
def party_keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ks = Account.encrypt(bytes.fromhex(PARTY_KEY[2:]), PARTY_PASSWORD, kdf="scrypt", iterations=2**10)
    path = tmp_path_factory.mktemp("party") / "merchant.json"
    path.write_text(json.dumps(ks))
    return path


def test_a_keystore_party_with_its_own_password_while_the_operators_differs(
    keystore: Path, party_keystore: Path, tmp_path: Path
) -> None:
    operator_env = {"LEDGER_KEYSTORE": str(keystore), "LEDGER_KEYSTORE_PASSWORD": PASSWORD}
    party = Account.from_key(PARTY_KEY).address
    pw_file = _private(tmp_path / "merchant.password", PARTY_PASSWORD + "\n")
    by_file = resolve_signer(f"keystore:{party_keystore}?password-file={pw_file}", env=operator_env)
    by_env = resolve_signer(f"keystore:{party_keystore}?password-env=MERCHANT_PW",
                            env={**operator_env, "MERCHANT_PW": PARTY_PASSWORD})
    assert by_file.address == by_env.address == party
    # the operator's key still opens with the operator's password, in the same environment
    operator = load_signer_from_env({**operator_env, "MERCHANT_PW": PARTY_PASSWORD})
    assert operator is not None and operator.address == Account.from_key(OPERATOR_KEY).address
    # without its own source the party's keystore falls back to the operator's password: wrong here
    with pytest.raises(ConfigError, match="wrong password"):
        resolve_signer(f"keystore:{party_keystore}", env=operator_env)
    # the shared fallback still works for a keystore that does share it
    shared = resolve_signer(f"keystore:{keystore}", env=operator_env)
    assert shared.address == Account.from_key(OPERATOR_KEY).address


def test_a_reference_with_its_own_password_source_uses_only_that(party_keystore: Path) -> None:
    env = {"LEDGER_KEYSTORE_PASSWORD": PARTY_PASSWORD}  # would open it, but is not the named source
    with pytest.raises(ConfigError, match="its password variable MERCHANT_PW is not set"):
        resolve_signer(f"keystore:{party_keystore}?password-env=MERCHANT_PW", env=env)
    with pytest.raises(ConfigError, match="wrong password") as err:
        resolve_signer(f"keystore:{party_keystore}?password-env=MERCHANT_PW",
                       env={**env, "MERCHANT_PW": "hunter2"})
    assert "hunter2" not in str(err.value)


def test_no_password_names_every_source(party_keystore: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_signer(f"keystore:{party_keystore}", env={})
    assert "?password-file=FILE or ?password-env=VAR" in str(err.value)
    assert "LEDGER_KEYSTORE_PASSWORD" in str(err.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_group_or_world_readable_password_file_is_refused(
    keystore: Path, party_keystore: Path, tmp_path: Path, mode: int
) -> None:
    """The attack: a password file others can read has already given the keystore away."""
    operator_pw = _private(tmp_path / "operator.password", PASSWORD + "\n", mode)
    with pytest.raises(ConfigError) as err:
        load_signer_from_env({"LEDGER_KEYSTORE": str(keystore),
                              "LEDGER_KEYSTORE_PASSWORD_FILE": str(operator_pw)})
    message = str(err.value)
    assert f"{operator_pw}" in message and f"mode {mode:04o}" in message
    assert f"chmod 600 {operator_pw}" in message and "LEDGER_KEYSTORE_PASSWORD_FILE" in message
    assert PASSWORD not in message
    party_pw = _private(tmp_path / "merchant.password", PARTY_PASSWORD, mode)
    with pytest.raises(ConfigError, match="chmod 600") as err:
        resolve_signer(f"keystore:{party_keystore}?password-file={party_pw}")
    assert f"mode {mode:04o}" in str(err.value) and PARTY_PASSWORD not in str(err.value)
    party_pw.chmod(0o400)  # read-only for the owner is fine
    assert resolve_signer(f"keystore:{party_keystore}?password-file={party_pw}").address == (
        Account.from_key(PARTY_KEY).address)


def test_password_file_symlink_directory_and_garbage_are_refused(
    party_keystore: Path, tmp_path: Path
) -> None:
    real = _private(tmp_path / "real.password", PARTY_PASSWORD)
    link = tmp_path / "link.password"
    link.symlink_to(real)
    for bad, reason in ((link, "cannot open keystore password file"),
                        (tmp_path, "is not a regular file"),
                        (tmp_path / "missing", "does not exist")):
        with pytest.raises(ConfigError, match=reason):
            resolve_signer(f"keystore:{party_keystore}?password-file={bad}")
    binary = tmp_path / "binary.password"
    binary.write_bytes(b"\xff\xfe" * 8)
    binary.chmod(0o600)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        resolve_signer(f"keystore:{party_keystore}?password-file={binary}")
    big = _private(tmp_path / "big.password", "x" * 5000)
    with pytest.raises(ConfigError, match="5000 bytes"):
        resolve_signer(f"keystore:{party_keystore}?password-file={big}")


def test_good_password_sources_are_references() -> None:
    for ref in ("keystore:k.json?password-file=/run/secrets/merchant",
                "keystore:dir/k.json?password-file=pw?x=1",  # FILE may hold '?' and '='
                "keystore:k.json?password-env=MERCHANT_PW"):
        assert key_reference_problem(ref) is None
