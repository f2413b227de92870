"""Signing keys: development accounts, the operator key, key references (dev:N, env:VAR,
keystore:PATH, optionally with its own password source: see `resolve_signer`).

Keys are never taken from the command line and never printed: a reference names where a key
lives, and errors name the reference, never the key.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger._internal.secrets_file import read_private_file
from ledger.config import Settings, settings, variable
from ledger.errors import ConfigError

if TYPE_CHECKING:
    from ledger.chain.rpc import Chain

_logger = logging.getLogger(__name__)

__all__ = [
    "ANVIL_MNEMONIC", "DEV_ACCOUNTS", "dev_key", "dev_keys", "key_reference_problem", "labelled_key",
    "load_signer_from_env", "read_password_file", "resolve_signer",
]


ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


DEV_ACCOUNTS = 10


def dev_keys(count: int = DEV_ACCOUNTS) -> list[LocalAccount]:
    """anvil's well-known development accounts (public test mnemonic: never hold value)."""
    return [dev_key(i) for i in range(count)]


@functools.cache
def dev_key(index: int) -> LocalAccount:
    """anvil's development account `index` (derived from its public test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return cast(LocalAccount, account)


def load_signer_from_env(env: Mapping[str, str] | None = None) -> LocalAccount | None:
    """The operator key from LEDGER_PRIVATE_KEY or an encrypted keystore (LEDGER_KEYSTORE),
    never both (which one was meant is not ours to guess); never logged."""
    s = settings(env)
    if s.private_key and s.keystore:
        raise ConfigError("both LEDGER_PRIVATE_KEY and LEDGER_KEYSTORE are set: the operator key must "
                          "come from one place; unset one of them")
    if s.private_key:
        try:
            account = cast(LocalAccount, Account.from_key(s.private_key))
        except Exception:  # noqa: BLE001 - never echo the key back
            raise ConfigError("LEDGER_PRIVATE_KEY is not a valid private key") from None
        _logger.info("operator key from LEDGER_PRIVATE_KEY: %s", account.address)
        return account
    if not s.keystore:
        return None
    if _RAW_KEY.fullmatch(s.keystore.strip()):  # LEDGER_KEYSTORE set to a key: never echo it
        raise ConfigError(f"the keystore path looks like a raw private key ({len(s.keystore.strip())} "
                          "characters): LEDGER_KEYSTORE names a keystore file")
    account = _keystore_signer(_KeystoreRef(s.keystore), s, env, hint="")
    _logger.info("operator key from keystore %s: %s", s.keystore, account.address)
    return account


@dataclass(frozen=True)
class _KeystoreRef:
    """A keystore file and, if the reference names one, its own password source."""

    path: str
    password_file: str | None = None  # ?password-file=FILE
    password_env: str | None = None  # ?password-env=VAR


_PASSWORD_OPTIONS = ("password-file", "password-env")
_OPTION_NAME = re.compile(r"[a-z][a-z-]{0,19}")
PASSWORD_FILE_MAX_BYTES = 4096


def _parse_keystore(arg: str) -> tuple[_KeystoreRef | None, str | None]:
    """The keystore reference after ``keystore:``, or why it is not one. PATH ends at the
    first '?'; after it comes one password source, password-file=FILE or password-env=VAR.
    Nothing after the '?' is repeated unless it is an option name: it may be a password."""
    path, question, option = arg.partition("?")
    if not path:
        return None, "keystore:PATH needs the path of a keystore file"
    if not question:
        return _KeystoreRef(path), None
    name, equals, value = option.partition("=")
    if not equals or not _OPTION_NAME.fullmatch(name):
        return None, (f"keystore:PATH?SOURCE: after '?' comes password-file=FILE or password-env=VAR, "
                      f"not {len(option)} other characters")
    if name == "password":
        return None, ("keystore:PATH?password=... is refused: a password never goes on the command "
                      "line; use ?password-file=FILE or ?password-env=VAR")
    if name not in _PASSWORD_OPTIONS:
        return None, (f"keystore:PATH?SOURCE: unknown password source {name!r}; use "
                      "password-file=FILE or password-env=VAR")
    if _RAW_KEY.fullmatch(value.strip()):
        return None, (f"keystore:PATH?{name}=: the value looks like a raw private key ({len(value)} "
                      "characters), not a file or a variable name")
    if name == "password-file":
        if not value:
            return None, "keystore:PATH?password-file=FILE needs the path of a file holding the password"
        return _KeystoreRef(path, password_file=value), None
    if not _ENV_NAME.fullmatch(value):
        return None, "keystore:PATH?password-env=VAR needs the name of an environment variable"
    return _KeystoreRef(path, password_env=value), None


def read_password_file(path: str, what: str = "keystore password file") -> str:
    """A keystore password from a file readable by its owner only (mode 0600 or 0400; a
    group- or world-readable one is refused, naming the fix). One trailing newline is not
    part of the password."""
    data = read_private_file(Path(path), what, max_bytes=PASSWORD_FILE_MAX_BYTES,
                             expected=f"a password of at most {PASSWORD_FILE_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None


def _keystore_password(ks: _KeystoreRef, s: Settings, env: Mapping[str, str] | None, hint: str) -> str:
    """The password of `ks`: its own source if the reference names one (never anything else
    then), else LEDGER_KEYSTORE_PASSWORD, else LEDGER_KEYSTORE_PASSWORD_FILE."""
    if ks.password_env is not None:
        password = variable(ks.password_env, env)
        if password is None:
            raise ConfigError(f"keystore {ks.path}: its password variable {ks.password_env} is not set")
        return password
    if ks.password_file is not None:
        return read_password_file(ks.password_file)
    if s.keystore_password is not None:
        return s.keystore_password
    if s.keystore_password_file:
        return read_password_file(s.keystore_password_file,
                                  "keystore password file (LEDGER_KEYSTORE_PASSWORD_FILE)")
    raise ConfigError(f"keystore {ks.path} needs a password: {hint}set LEDGER_KEYSTORE_PASSWORD or "
                      "LEDGER_KEYSTORE_PASSWORD_FILE")


def _keystore_signer(
    ks: _KeystoreRef, s: Settings, env: Mapping[str, str] | None, *, hint: str
) -> LocalAccount:
    """The key in an encrypted keystore (errors name the file, never the password)."""
    password = _keystore_password(ks, s, env, hint)
    try:
        encrypted = Path(ks.path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {ks.path}: {exc.strerror}") from None
    try:
        return cast(LocalAccount, Account.from_key(Account.decrypt(encrypted, password)))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"cannot decrypt keystore {ks.path}: wrong password or corrupt file") from None


def resolve_signer(
    ref: str, chain: Chain | None = None, env: Mapping[str, str] | None = None
) -> LocalAccount:
    """A signing key from a reference, never from a literal key on the command line.

    ``dev:N``         the N-th well-known development account (embedded chain or local anvil)
    ``env:VAR``       a private key (hex) in the environment variable VAR
    ``keystore:PATH`` an encrypted eth-account keystore; its password comes from
                      LEDGER_KEYSTORE_PASSWORD, else the file LEDGER_KEYSTORE_PASSWORD_FILE
    ``keystore:PATH?password-file=FILE``  ... whose own password is in FILE (mode 0600)
    ``keystore:PATH?password-env=VAR``    ... whose own password is in the variable VAR

    A reference with its own password source uses that source only, so each party's
    keystore can have its own password, independent of the operator's. PATH cannot contain
    '?'. A password file readable by group or others is refused (chmod 600 fixes it).
    """
    problem = key_reference_problem(ref)
    if problem is not None:
        raise ConfigError(problem)
    kind, _, arg = ref.strip().partition(":")
    if kind == "dev":
        if chain is not None and chain.kind not in ("embedded", "anvil"):
            raise ConfigError(f"{ref}: development accounts exist only on the embedded chain or a "
                              f"local anvil node with chain id 31337, not on {chain.describe()}")
        n = int(arg)
        if chain is not None and n < len(chain.accounts) and chain.kind == "embedded":
            return chain.accounts[n]
        return dev_key(n)
    if kind == "env":
        key = variable(arg, env)
        if not key:
            raise ConfigError(f"{ref}: environment variable {arg} is not set")
        try:
            return cast(LocalAccount, Account.from_key(key))
        except Exception:  # noqa: BLE001 - never echo the key
            raise ConfigError(f"{ref}: {arg} does not hold a valid private key") from None
    ks, _ = _parse_keystore(arg)
    assert ks is not None  # key_reference_problem checked it
    return _keystore_signer(ks, settings(env), env,
                            hint="add ?password-file=FILE or ?password-env=VAR to the reference, or ")


_RAW_KEY = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KIND = re.compile(r"[a-z]{1,12}")


def key_reference_problem(ref: str) -> str | None:
    """Why `ref` is not a key reference (dev:N, env:VAR, keystore:PATH[?password-file=FILE |
    ?password-env=VAR]), or None.

    The reason never repeats the text: what was typed where a reference belongs may be a
    key or a mnemonic itself, so it is described by its shape only.
    """
    text = ref.strip()
    kind, sep, arg = text.partition(":")
    if _RAW_KEY.fullmatch(text) or _RAW_KEY.fullmatch(arg):
        return (f"looks like a raw private key ({len(text)} characters): keys never go on the "
                "command line; put it in an environment variable and pass env:VAR")
    if len(text.split()) >= 12:
        return (f"looks like a mnemonic phrase ({len(text.split())} words): keys never go on "
                "the command line; use env:VAR (a private key) or keystore:PATH")
    if kind == "dev":
        return None if arg.isascii() and arg.isdigit() and int(arg) < 100 else (
            "dev:N needs N, a development account number from 0 to 99")
    if kind == "env":
        return None if _ENV_NAME.fullmatch(arg) else "env:VAR needs the name of an environment variable"
    if kind == "keystore":
        return _parse_keystore(arg)[1]
    prefix = f", prefix {kind!r}" if sep and _KIND.fullmatch(kind) else ""
    return (f"not a key reference ({len(text)} characters{prefix}): use dev:N, env:VAR or "
            "keystore:PATH")


def labelled_key(label: str) -> LocalAccount:
    """A deterministic key from a public label: for development chains only, never for value."""
    return cast(LocalAccount, Account.from_key(hashlib.sha256(label.encode()).digest()))
