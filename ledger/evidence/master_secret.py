"""The master secret, the salts derived from it, and encryption of personal fields at rest.

Derivation (HKDF-SHA256, RFC 5869; ``||`` is concatenation, ids are UTF-8)::

    prk          = HKDF-Extract(salt=b"evidence-escrow/v1", ikm=master)
    order_key    = HKDF-Expand(prk, b"order:" || order_id, 32)
    record salt  = HKDF-Expand(order_key, b"record:" || record_id, 32)
    personal salt= HKDF-Expand(order_key, b"personal:" || record_id, 32)
    data key     = HKDF-Expand(prk, b"data-key", 32)
    wrap key     = HKDF-Expand(prk, b"order-key-wrap/v2", 32)

That ``order_key`` is key derivation version 1. Orders first seen since version 2 get a random
order key instead, stored wrapped under the wrap key so that erasing it makes their salts
unrecoverable (`ledger.evidence.order_keys`); salts derive from an order key the same way in
both versions.

``order_key`` is ``HKDF(ikm=master, salt=b"evidence-escrow/v1", info=b"order:" || order_id)``.
HKDF-Expand is a PRF keyed by its first argument, so disclosing one order's key (or any of
its record salts) to an auditor reveals nothing about other orders, the master secret or
the data key.

The master secret comes from ``LEDGER_MASTER_SECRET`` (64 hex characters) or from a keyfile
named by ``LEDGER_MASTER_SECRET_FILE`` that only its owner may access (mode 0600). It is
never printed: `MasterSecret`'s repr shows only a fingerprint, and it cannot be pickled.

Personal fields are stored encrypted with AES-256-GCM under the data key (or under
``LEDGER_DATA_KEY`` when set): ``blob = 0x01 || nonce(12) || ciphertext+tag``, with the
record id as associated data so that a blob cannot be moved to another record. Nonces are
random; keep well below 2**32 encryptions per key (NIST SP 800-38D).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger._internal import canonical
from ledger._internal.secrets_file import read_private_file
from ledger.config import settings
from ledger.errors import ConfigError, CryptoError

__all__ = [
    "PERSONAL_SALT_INFO",
    "RECORD_SALT_INFO",
    "WRAP_KEY_INFO",
    "OrderKey",
    "DATA_KEY_ENV",
    "HKDF_SALT",
    "MASTER_SECRET_ENV",
    "MASTER_SECRET_FILE_ENV",
    "MasterSecret",
    "PersonalCipher",
    "decrypt_personal",
    "encrypt_personal",
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "load_data_key",
]

MASTER_SECRET_ENV = "LEDGER_MASTER_SECRET"
MASTER_SECRET_FILE_ENV = "LEDGER_MASTER_SECRET_FILE"
DATA_KEY_ENV = "LEDGER_DATA_KEY"
HKDF_SALT = b"evidence-escrow/v1"

_HASH_LEN = 32
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_ORDER_KEY_CACHE = 65536

BLOB_VERSION = 1
_NONCE_LEN = 12
_TAG_LEN = 16


# --- HKDF (RFC 5869) with SHA-256 -------------------------------------------------------


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract: PRK = HMAC-SHA256(salt, ikm); an empty salt means 32 zero bytes."""
    return hmac.digest(salt or bytes(_HASH_LEN), ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand: T(i) = HMAC-SHA256(prk, T(i-1) || info || i), output truncated to length."""
    if length == _HASH_LEN:  # the only length the ledger uses: one HMAC
        return hmac.digest(prk, info + b"\x01", "sha256")
    if not 0 <= length <= 255 * _HASH_LEN:
        raise ValueError(f"HKDF-SHA256 output length must be 0..{255 * _HASH_LEN}, got {length}")
    out = bytearray()
    t = b""
    i = 0
    while len(out) < length:
        i += 1
        t = hmac.digest(prk, t + info + bytes((i,)), "sha256")
        out += t
    return bytes(out[:length])


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (extract then expand)."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac_states(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after absorbing the HMAC inner and outer pads of a 32-byte key.

    Copying these is about twice as fast as `hmac.digest`, which re-derives the pads on
    every call; the salts are derived once per record on the ingest hot path.
    """
    block = key.ljust(64, b"\0")
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


def _hmac_with(inner: Any, outer: Any, msg: bytes) -> bytes:
    """HMAC-SHA256(key, msg) from the precomputed pad states of key."""
    i = inner.copy()
    i.update(msg)
    o = outer.copy()
    o.update(i.digest())
    digest: bytes = o.digest()
    return digest


# --- the master secret --------------------------------------------------------------------


def _parse_hex_key(text: str, what: str) -> bytes:
    """32 bytes from 64 hex characters; the message never echoes the value."""
    text = text.strip()
    if len(text) != 2 * _HASH_LEN:
        raise ConfigError(
            f"{what} must be {2 * _HASH_LEN} hex characters (32 bytes); got {len(text)} characters"
        )
    if _HEX64.fullmatch(text) is None:
        raise ConfigError(f"{what} must be hex characters 0-9 a-f; it holds other characters")
    return bytes.fromhex(text)


RECORD_SALT_INFO = b"record:"
WRAP_KEY_INFO = b"order-key-wrap/v2"
PERSONAL_SALT_INFO = b"personal:"


class OrderKey:
    """One order's key, and THE derivation of its records' salts (see the module docstring).

    The platform gets these from `MasterSecret.order`; a verifier builds one from the order
    key a bundle discloses. The HMAC pad states are computed once per order key, so each
    salt costs one HMAC.
    """

    __slots__ = ("key", "_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) != _HASH_LEN:
            raise ValueError("an order key is 32 bytes")
        self.key = key
        self._inner, self._outer = _hmac_states(key)

    def __repr__(self) -> str:
        return "OrderKey(<hidden>)"

    def _expand(self, info: bytes) -> bytes:
        """HKDF-Expand(key, info, 32) = HMAC-SHA256(key, info || 0x01)."""
        return _hmac_with(self._inner, self._outer, info + b"\x01")

    def record_salt(self, record_id: str) -> bytes:
        """HKDF-Expand(order_key, b"record:" || record_id, 32): the salt in the leaf."""
        return self._expand(RECORD_SALT_INFO + record_id.encode("utf-8"))

    def personal_salt(self, record_id: str) -> bytes:
        """HKDF-Expand(order_key, b"personal:" || record_id, 32): salts the personal commitment."""
        return self._expand(PERSONAL_SALT_INFO + record_id.encode("utf-8"))

    def salts(self, record_id: str) -> tuple[bytes, bytes]:
        """(record salt, personal salt)."""
        rid = record_id.encode("utf-8")
        return self._expand(RECORD_SALT_INFO + rid), self._expand(PERSONAL_SALT_INFO + rid)


class MasterSecret:
    """The 32-byte secret from which every salt and the data key are derived.

    Derived order keys are cached (LRU), so deriving both salts of a record costs two
    HMACs on a cache hit. The secret never appears in repr/str and cannot be pickled.
    """

    __slots__ = ("_prk", "_order_key", "_data_key", "_wrap_key", "_fingerprint", "__weakref__")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != _HASH_LEN:
            raise ConfigError("the master secret must be exactly 32 bytes")
        secret = bytes(secret)
        # Only the HKDF-Extract output is kept: it determines every derived value.
        prk = hkdf_extract(HKDF_SALT, secret)
        self._prk = prk
        self._data_key = hkdf_expand(prk, b"data-key", _HASH_LEN)
        self._wrap_key = hkdf_expand(prk, WRAP_KEY_INFO, _HASH_LEN)
        self._fingerprint = hkdf_expand(prk, b"fingerprint", _HASH_LEN)[:8].hex()

        def derive(order_id: str) -> OrderKey:
            return OrderKey(hkdf_expand(prk, b"order:" + order_id.encode("utf-8"), _HASH_LEN))

        self._order_key = functools.lru_cache(maxsize=_ORDER_KEY_CACHE)(derive)

    # construction --------------------------------------------------------------------

    @classmethod
    def generate(cls) -> MasterSecret:
        """A fresh random secret (from the OS CSPRNG)."""
        return cls(os.urandom(_HASH_LEN))

    @classmethod
    def from_hex(cls, text: str) -> MasterSecret:
        """From 64 hex characters (surrounding whitespace ignored)."""
        return cls(_parse_hex_key(text, "the master secret"))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MasterSecret:
        """From a keyfile holding 64 hex characters, readable by its owner only."""
        return cls(_parse_hex_key(_read_private_file(Path(path)), f"keyfile {path}"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MasterSecret:
        """From ``LEDGER_MASTER_SECRET`` or ``LEDGER_MASTER_SECRET_FILE`` (exactly one)."""
        s = settings(environ)
        inline = s.master_secret
        path = s.master_secret_file
        if inline and path:
            raise ConfigError(
                f"both {MASTER_SECRET_ENV} and {MASTER_SECRET_FILE_ENV} are set; set only one"
            )
        if inline:
            return cls(_parse_hex_key(inline, MASTER_SECRET_ENV))
        if path:
            return cls.from_file(path)
        raise ConfigError(
            f"no master secret: set {MASTER_SECRET_ENV} to 64 hex characters, or "
            f"{MASTER_SECRET_FILE_ENV} to a mode-0600 file holding them "
            "(MasterSecret.generate_keyfile(path) creates one)"
        )

    @staticmethod
    def generate_hex() -> str:
        """64 hex characters of a fresh random secret, for ``LEDGER_MASTER_SECRET``."""
        return os.urandom(_HASH_LEN).hex()

    @classmethod
    def generate_keyfile(cls, path: str | os.PathLike[str]) -> MasterSecret:
        """Create a new random secret in a new mode-0600 keyfile at `path` and return it."""
        secret = os.urandom(_HASH_LEN)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"keyfile {path} already exists; not overwriting it") from None
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex() + "\n")
        return cls(secret)

    # derivation ----------------------------------------------------------------------

    def order(self, order_id: str) -> OrderKey:
        """The order's version-1 key (cached), which derives its records' salts. The store knows
        which version each order uses (`ledger.evidence.order_keys`): ask it, not this."""
        key: OrderKey = self._order_key(order_id)
        return key

    def order_key(self, order_id: str) -> bytes:
        """HKDF(master, salt=b"evidence-escrow/v1", info=b"order:" || order_id, 32)."""
        return self.order(order_id).key

    def record_salt(self, order_id: str, record_id: str) -> bytes:
        """The salt in the leaf of record `record_id` of order `order_id`."""
        return self.order(order_id).record_salt(record_id)

    def personal_salt(self, order_id: str, record_id: str) -> bytes:
        """The salt of that record's personal commitment."""
        return self.order(order_id).personal_salt(record_id)

    def salts(self, order_id: str, record_id: str) -> tuple[bytes, bytes]:
        """(record salt, personal salt) with one order-key lookup."""
        return self.order(order_id).salts(record_id)

    @property
    def data_key(self) -> bytes:
        """HKDF-Expand(prk, b"data-key", 32): the AES-256-GCM key for personal fields."""
        return self._data_key

    @property
    def wrap_key(self) -> bytes:
        """HKDF-Expand(prk, b"order-key-wrap/v2", 32): the AES-256-GCM key that wraps random
        (version 2) order keys in the store."""
        return self._wrap_key

    @property
    def fingerprint(self) -> str:
        """16 hex characters identifying this secret without revealing anything about it."""
        return self._fingerprint

    # hygiene -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"MasterSecret(fingerprint={self._fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterSecret):
            return NotImplemented
        return hmac.compare_digest(self._prk, other._prk)

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a MasterSecret cannot be pickled or copied out of the process")


def _read_private_file(path: Path) -> str:
    """Read a keyfile after checking that only its owner can access it."""
    data = read_private_file(path, "keyfile", max_bytes=1024, expected="64 hex characters")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"keyfile {path} must hold 64 hex characters; it holds other bytes") from None


def load_data_key(master: MasterSecret | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The key for personal fields: ``LEDGER_DATA_KEY`` if set, else the master's data key."""
    text = settings(environ).data_key
    if text:
        return _parse_hex_key(text, DATA_KEY_ENV)
    if master is None:
        raise ConfigError(f"no data key: set {DATA_KEY_ENV} or provide the master secret")
    return master.data_key


# --- personal fields at rest ----------------------------------------------------------


class PersonalCipher:
    """AES-256-GCM for personal fields under one key; reuse it on hot paths."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            raise ConfigError("the data key must be exactly 32 bytes (AES-256)")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "PersonalCipher(<key hidden>)"

    def encrypt(self, record_id: str, personal: Mapping[str, Any]) -> bytes:
        """``0x01 || nonce || AES-GCM(JCS(personal), aad=record_id)``."""
        return self.encrypt_canonical(record_id, canonical.dumps_strict(dict(personal)))

    def encrypt_canonical(self, record_id: str, personal_jcs: bytes) -> bytes:
        """`encrypt` for personal fields already in canonical form (the ingest hot path)."""
        nonce = os.urandom(_NONCE_LEN)
        ct = self._aead.encrypt(nonce, personal_jcs, record_id.encode("utf-8"))
        return bytes((BLOB_VERSION,)) + nonce + ct

    def decrypt(self, record_id: str, blob: bytes) -> dict[str, Any]:
        """The personal fields; `CryptoError` on a wrong key, another record's blob or tampering."""
        if len(blob) < 1 + _NONCE_LEN + _TAG_LEN:
            raise CryptoError(f"personal-data blob of record {record_id!r} is truncated")
        if blob[0] != BLOB_VERSION:
            raise CryptoError(
                f"personal-data blob of record {record_id!r} has unknown format version {blob[0]}"
            )
        nonce = bytes(blob[1 : 1 + _NONCE_LEN])
        try:
            plaintext = self._aead.decrypt(nonce, bytes(blob[1 + _NONCE_LEN :]), record_id.encode("utf-8"))
        except InvalidTag:
            raise CryptoError(
                f"cannot decrypt personal data of record {record_id!r}: wrong data key, "
                "a blob from another record, or tampered ciphertext"
            ) from None
        try:
            value = json.loads(plaintext)
        except ValueError:
            raise CryptoError(f"personal data of record {record_id!r} is not JSON") from None
        if not isinstance(value, dict):
            raise CryptoError(f"personal data of record {record_id!r} is not an object")
        return value


def encrypt_personal(key: bytes, record_id: str, personal: Mapping[str, Any]) -> bytes:
    """Encrypt a record's personal fields (see `PersonalCipher.encrypt`)."""
    return PersonalCipher(key).encrypt(record_id, personal)


def decrypt_personal(key: bytes, record_id: str, blob: bytes) -> dict[str, Any]:
    """Decrypt a record's personal fields; `CryptoError` on a wrong key or tampering."""
    return PersonalCipher(key).decrypt(record_id, blob)
