"""Signing keys: development accounts, the operator key, key references (dev:N, env:VAR, keystore:PATH).

Keys are never taken from the command line and never printed: a reference names where a key
lives, and errors name the reference, never the key.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.config import Settings, settings, variable
from ledger.errors import ConfigError

if TYPE_CHECKING:
    from ledger.chain.rpc import Chain

_logger = logging.getLogger(__name__)

__all__ = [
    "ANVIL_MNEMONIC", "DEV_ACCOUNTS", "dev_key", "dev_keys", "key_reference_problem", "labelled_key",
    "load_signer_from_env", "resolve_signer",
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
    """The operator key from LEDGER_PRIVATE_KEY or an encrypted keystore; never logged."""
    s = settings(env)
    if s.private_key:
        try:
            account = cast(LocalAccount, Account.from_key(s.private_key))
        except Exception:  # noqa: BLE001 - never echo the key back
            raise ConfigError("LEDGER_PRIVATE_KEY is not a valid private key") from None
        _logger.info("operator key from LEDGER_PRIVATE_KEY: %s", account.address)
        return account
    if not s.keystore:
        return None
    account = _keystore_signer(s.keystore, s)
    _logger.info("operator key from keystore %s: %s", s.keystore, account.address)
    return account


def _keystore_signer(keystore: str, s: Settings) -> LocalAccount:
    """The key in an encrypted keystore, its password from LEDGER_KEYSTORE_PASSWORD(_FILE)."""
    if _RAW_KEY.fullmatch(keystore.strip()):  # LEDGER_KEYSTORE set to a key: never echo it
        raise ConfigError(f"the keystore path looks like a raw private key ({len(keystore.strip())} "
                          "characters): LEDGER_KEYSTORE names a keystore file")
    password = s.keystore_password
    pw_file = s.keystore_password_file
    if password is None and pw_file:
        try:
            password = Path(pw_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read keystore password file {pw_file}: {exc.strerror}") from None
    if password is None:
        raise ConfigError(
            f"keystore {keystore} needs a password: set LEDGER_KEYSTORE_PASSWORD or "
            "LEDGER_KEYSTORE_PASSWORD_FILE"
        )
    try:
        encrypted = Path(keystore).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {keystore}: {exc.strerror}") from None
    try:
        return cast(LocalAccount, Account.from_key(Account.decrypt(encrypted, password)))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"cannot decrypt keystore {keystore}: wrong password or corrupt file") from None


def resolve_signer(
    ref: str, chain: Chain | None = None, env: Mapping[str, str] | None = None
) -> LocalAccount:
    """A signing key from a reference, never from a literal key on the command line.

    ``dev:N``        the N-th well-known development account (embedded chain or local anvil)
    ``env:VAR``      a private key (hex) in the environment variable VAR
    ``keystore:PATH`` an encrypted eth-account keystore; its password comes from
                     LEDGER_KEYSTORE_PASSWORD or LEDGER_KEYSTORE_PASSWORD_FILE
    """
    problem = key_reference_problem(ref)
    if problem is not None:
        raise ConfigError(problem)
    kind, _, arg = ref.strip().partition(":")
    if kind == "dev":
        if chain is not None and chain.kind not in ("embedded", "anvil"):
            raise ConfigError(f"{ref}: development accounts exist only on the embedded chain or anvil")
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
    return _keystore_signer(arg, settings(env))


_RAW_KEY = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KIND = re.compile(r"[a-z]{1,12}")


def key_reference_problem(ref: str) -> str | None:
    """Why `ref` is not a key reference (dev:N, env:VAR, keystore:PATH), or None.

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
        return None if arg else "keystore:PATH needs the path of a keystore file"
    prefix = f", prefix {kind!r}" if sep and _KIND.fullmatch(kind) else ""
    return (f"not a key reference ({len(text)} characters{prefix}): use dev:N, env:VAR or "
            "keystore:PATH")


def labelled_key(label: str) -> LocalAccount:
    """A deterministic key from a public label: for development chains only, never for value."""
    return cast(LocalAccount, Account.from_key(hashlib.sha256(label.encode()).digest()))
