"""Secrets: HKDF against RFC 5869, the master secret's derivations and hygiene, AES-GCM blobs."""

from __future__ import annotations

import copy
import hmac
import json
import os
import pickle
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import example, given
from hypothesis import strategies as st

from ledger._internal import canonical
from ledger.errors import ConfigError, CryptoError
from ledger.evidence.master_secret import (
    DATA_KEY_ENV,
    HKDF_SALT,
    MASTER_SECRET_ENV,
    MASTER_SECRET_FILE_ENV,
    MasterSecret,
    OrderKey,
    PersonalCipher,
    decrypt_personal,
    encrypt_personal,
    hkdf,
    hkdf_expand,
    hkdf_extract,
    load_data_key,
)

# --- HKDF-SHA256: RFC 5869 Appendix A, test cases 1-3 -----------------------------------

RFC5869 = {
    "A.1 basic": dict(
        ikm="0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        salt="000102030405060708090a0b0c",
        info="f0f1f2f3f4f5f6f7f8f9",
        length=42,
        prk="077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        okm="3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    "A.2 long inputs": dict(
        ikm="000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f",
        salt="606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        info="b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
        "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
        "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        length=82,
        prk="06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        okm="b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    "A.3 empty salt and info": dict(
        ikm="0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        salt="",
        info="",
        length=42,
        prk="19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        okm="8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
}


def _crypto_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """The `cryptography` package's HKDF-SHA256: an independent implementation."""
    return HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)


@pytest.mark.parametrize("case", list(RFC5869.values()), ids=list(RFC5869))
def test_hkdf_rfc5869_vectors(case: dict[str, object]) -> None:
    ikm, salt, info = (bytes.fromhex(str(case[k])) for k in ("ikm", "salt", "info"))
    length = int(str(case["length"]))
    prk, okm = bytes.fromhex(str(case["prk"])), bytes.fromhex(str(case["okm"]))

    assert hkdf_extract(salt, ikm) == prk
    assert hkdf_expand(prk, info, length) == okm
    assert hkdf(ikm, salt, info, length) == okm
    # The typed-in vectors agree with an independent implementation too.
    assert HKDF.extract(hashes.SHA256(), salt or None, ikm) == prk
    assert HKDFExpand(hashes.SHA256(), length, info).derive(prk) == okm
    assert _crypto_hkdf(ikm, salt, info, length) == okm


@given(
    ikm=st.binary(max_size=100),
    salt=st.binary(max_size=100),
    info=st.binary(max_size=100),
    length=st.integers(min_value=1, max_value=255 * 32),
)
@example(ikm=b"k", salt=b"", info=b"", length=32)  # the one-HMAC fast path
@example(ikm=b"k", salt=b"s", info=b"i", length=31)
@example(ikm=b"k", salt=b"s", info=b"i", length=33)
@example(ikm=b"k", salt=b"s", info=b"i", length=64)
@example(ikm=b"k", salt=b"s", info=b"i", length=255 * 32)  # the RFC's maximum
def test_hkdf_matches_cryptography(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    assert hkdf(ikm, salt, info, length) == _crypto_hkdf(ikm, salt, info, length)


def test_hkdf_expand_prefix_property_and_limits() -> None:
    prk = hkdf_extract(b"salt", b"ikm")
    long = hkdf_expand(prk, b"info", 100)
    for n in (0, 1, 31, 32, 33, 64, 99):
        assert hkdf_expand(prk, b"info", n) == long[:n]
    with pytest.raises(ValueError, match="8160"):
        hkdf_expand(prk, b"info", 255 * 32 + 1)
    with pytest.raises(ValueError):
        hkdf_expand(prk, b"info", -1)


def test_hkdf_extract_empty_salt_is_hash_length_zeros() -> None:
    assert hkdf_extract(b"", b"ikm") == hkdf_extract(bytes(32), b"ikm")
    assert hkdf_extract(b"", b"ikm") != hkdf_extract(b"\x01", b"ikm")


# --- MasterSecret: derivations -----------------------------------------------------------

SECRET = bytes(range(32))
ORDERS = ["O1", "O2", "order-0001", "订单-7", ""]
RECORDS = ["R1", "R2", "O1", "pay-1", "评价-2"]


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, "sha256").digest()


def _from_scratch(master: bytes, order_id: str, record_id: str) -> tuple[bytes, bytes, bytes]:
    """(order key, record salt, personal salt) computed as the module docstring describes."""
    prk = _hmac(HKDF_SALT, master)  # HKDF-Extract(salt=b"evidence-escrow/v1", ikm=master)
    order_key = _hmac(prk, b"order:" + order_id.encode() + b"\x01")  # T(1) of HKDF-Expand
    rid = record_id.encode()
    return (
        order_key,
        _hmac(order_key, b"record:" + rid + b"\x01"),
        _hmac(order_key, b"personal:" + rid + b"\x01"),
    )


@pytest.mark.parametrize("order_id", ORDERS)
def test_master_derivations_match_docstring(order_id: str) -> None:
    m = MasterSecret(SECRET)
    for record_id in RECORDS:
        order_key, record_salt, personal_salt = _from_scratch(SECRET, order_id, record_id)
        assert m.order_key(order_id) == order_key
        assert m.record_salt(order_id, record_id) == record_salt
        assert m.personal_salt(order_id, record_id) == personal_salt
        assert m.salts(order_id, record_id) == (record_salt, personal_salt)
        # ... and with an independent HKDF: order_key = HKDF(master, salt, b"order:" || id).
        assert order_key == _crypto_hkdf(SECRET, HKDF_SALT, b"order:" + order_id.encode(), 32)
        assert record_salt == HKDFExpand(
            hashes.SHA256(), 32, b"record:" + record_id.encode()
        ).derive(order_key)
    assert m.data_key == _crypto_hkdf(SECRET, HKDF_SALT, b"data-key", 32)


def test_master_salts_all_distinct() -> None:
    m = MasterSecret(SECRET)
    values = [m.order_key(o) for o in ORDERS]
    for o in ORDERS:
        for r in RECORDS:
            values.extend(m.salts(o, r))
    values.append(m.data_key)
    assert len(set(values)) == len(values)
    # Another master secret gives other salts for the same ids.
    other = MasterSecret(bytes(31) + b"\x01")
    assert other.salts("O1", "R1") != m.salts("O1", "R1")
    assert other.data_key != m.data_key
    assert other.fingerprint != m.fingerprint


def test_master_derivation_is_independent_of_cache_state() -> None:
    """Order keys are LRU-cached: results must not depend on call order or instance."""
    a, b = MasterSecret(SECRET), MasterSecret(SECRET)
    forward = [a.salts(o, r) for o in ORDERS for r in RECORDS]
    backward = [b.salts(o, r) for o in reversed(ORDERS) for r in reversed(RECORDS)]
    assert forward == backward[::-1]
    assert a == b and hash(a) == hash(b)
    assert a != MasterSecret.generate()


def test_master_requires_32_bytes() -> None:
    for bad in (b"", bytes(31), bytes(33), "00" * 32):
        with pytest.raises(ConfigError):
            MasterSecret(bad)  # type: ignore[arg-type]


# --- MasterSecret: hygiene ------------------------------------------------------------------


def test_master_repr_and_str_hide_the_secret() -> None:
    m = MasterSecret(SECRET)
    secret_hex = SECRET.hex()
    for text in (repr(m), str(m), f"{m}", f"{m!r}", repr([m]), repr({"k": m})):
        assert secret_hex not in text.lower()
        assert m.data_key.hex() not in text
        assert m.fingerprint in text
    # The raw secret is not kept at all: only the HKDF-Extract output is.
    for slot in MasterSecret.__slots__:
        value = getattr(m, slot, None)
        assert value != SECRET and not (isinstance(value, bytes) and SECRET in value)


def test_master_cannot_be_pickled_or_copied() -> None:
    m = MasterSecret(SECRET)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(m, protocol=protocol)
    with pytest.raises(TypeError):
        copy.deepcopy(m)
    with pytest.raises(TypeError):
        copy.copy(m)


# --- MasterSecret: loading -------------------------------------------------------------------


def test_from_env_inline_and_file(tmp_path: Path) -> None:
    assert MasterSecret.from_env({MASTER_SECRET_ENV: SECRET.hex()}) == MasterSecret(SECRET)
    # surrounding whitespace and upper case are fine
    assert MasterSecret.from_env(
        {MASTER_SECRET_ENV: f"  {SECRET.hex().upper()}\n"}
    ) == MasterSecret(SECRET)
    path = tmp_path / "master.key"
    created = MasterSecret.generate_keyfile(path)
    assert MasterSecret.from_env({MASTER_SECRET_FILE_ENV: str(path)}) == created


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_SECRET_FILE_ENV, raising=False)
    monkeypatch.setenv(MASTER_SECRET_ENV, SECRET.hex())
    assert MasterSecret.from_env() == MasterSecret(SECRET)


def test_from_env_neither_or_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        MasterSecret.from_env({})
    assert MASTER_SECRET_ENV in str(exc.value) and MASTER_SECRET_FILE_ENV in str(exc.value)
    keyfile = tmp_path / "k"
    MasterSecret.generate_keyfile(keyfile)
    with pytest.raises(ConfigError, match="set only one") as exc:
        MasterSecret.from_env(
            {MASTER_SECRET_ENV: SECRET.hex(), MASTER_SECRET_FILE_ENV: str(keyfile)}
        )
    assert SECRET.hex() not in str(exc.value)


BAD_SECRETS = {
    "too short": "5eC7e7" * 10,  # 60 characters
    "too long": SECRET.hex() + "ab",
    "not hex": "Zq" + SECRET.hex()[2:],
    "not hex, right length": "g" * 64,
    "0x prefix": "0x" + SECRET.hex()[2:],
    "inner space": SECRET.hex()[:30] + " " + SECRET.hex()[31:],
}


@pytest.mark.parametrize("value", list(BAD_SECRETS.values()), ids=list(BAD_SECRETS))
def test_from_env_bad_values_are_not_echoed(value: str) -> None:
    with pytest.raises(ConfigError) as exc:
        MasterSecret.from_env({MASTER_SECRET_ENV: value})
    message = exc.value.diagnostics()
    assert MASTER_SECRET_ENV in message
    assert value.strip() not in message
    # not even a recognisable piece of it
    core = value.strip()
    for i in range(0, len(core) - 8):
        assert core[i : i + 8] not in message


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_from_file_permissions(tmp_path: Path) -> None:
    text = SECRET.hex() + "\n"
    ok = _write(tmp_path / "ok.key", text, 0o600)
    assert MasterSecret.from_file(ok) == MasterSecret(SECRET)
    assert MasterSecret.from_file(_write(tmp_path / "ro.key", text, 0o400)) == MasterSecret(SECRET)
    for mode in (0o644, 0o640, 0o604, 0o660):
        path = _write(tmp_path / f"m{mode:o}.key", text, mode)
        with pytest.raises(ConfigError, match="chmod 600") as exc:
            MasterSecret.from_file(path)
        assert f"{mode:04o}" in str(exc.value)
        assert SECRET.hex() not in str(exc.value)


def test_from_file_refuses_symlinks_dirs_missing_and_garbage(tmp_path: Path) -> None:
    target = _write(tmp_path / "real.key", SECRET.hex(), 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(ConfigError):
        MasterSecret.from_file(link)
    with pytest.raises(ConfigError, match="not a regular file"):
        MasterSecret.from_file(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        MasterSecret.from_file(tmp_path / "missing.key")
    garbage = _write(tmp_path / "garbage.key", "hunter2-hunter2", 0o600)
    with pytest.raises(ConfigError) as exc:
        MasterSecret.from_file(garbage)
    assert "hunter2" not in str(exc.value)
    big = _write(tmp_path / "big.key", "0" * 4096, 0o600)
    with pytest.raises(ConfigError):
        MasterSecret.from_file(big)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff" * 64)
    binary.chmod(0o600)
    with pytest.raises(ConfigError):
        MasterSecret.from_file(binary)


def test_generate_keyfile_mode_and_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = MasterSecret.generate_keyfile(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert MasterSecret.from_hex(content) == created == MasterSecret.from_file(path)
    with pytest.raises(ConfigError, match="already exists"):
        MasterSecret.generate_keyfile(path)
    assert path.read_text() == content
    assert MasterSecret.generate_keyfile(tmp_path / "other.key") != created


def test_generate_hex() -> None:
    a, b = MasterSecret.generate_hex(), MasterSecret.generate_hex()
    assert len(a) == 64 and int(a, 16) >= 0 and a != b
    assert MasterSecret.from_hex(a) != MasterSecret.from_hex(b)


# --- the data key ------------------------------------------------------------------------


def test_load_data_key_precedence() -> None:
    m = MasterSecret(SECRET)
    explicit = bytes(range(100, 132))
    assert load_data_key(m, {}) == m.data_key
    assert load_data_key(m, {DATA_KEY_ENV: explicit.hex()}) == explicit
    assert load_data_key(None, {DATA_KEY_ENV: explicit.hex()}) == explicit
    assert load_data_key(m, {DATA_KEY_ENV: ""}) == m.data_key  # empty means unset
    with pytest.raises(ConfigError, match=DATA_KEY_ENV):
        load_data_key(None, {})
    bad = "c0ffee" * 10
    with pytest.raises(ConfigError) as exc:
        load_data_key(m, {DATA_KEY_ENV: bad})
    assert bad not in str(exc.value) and DATA_KEY_ENV in str(exc.value)


def test_load_data_key_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = bytes(range(200, 232))
    monkeypatch.setenv(DATA_KEY_ENV, explicit.hex())
    assert load_data_key(MasterSecret(SECRET)) == explicit
    monkeypatch.delenv(DATA_KEY_ENV)
    assert load_data_key(MasterSecret(SECRET)) == MasterSecret(SECRET).data_key


# --- PersonalCipher ---------------------------------------------------------------------------

KEY = bytes(range(32, 64))
PERSONAL = {
    "name": "李雷",
    "phone": "+86 138 0000 0000",
    "address": {"city": "杭州", "zip": "310000"},
}


def test_cipher_round_trip_and_layout() -> None:
    c = PersonalCipher(KEY)
    blob = c.encrypt("R1", PERSONAL)
    assert c.decrypt("R1", blob) == PERSONAL
    plaintext = canonical.dumps_strict(PERSONAL)
    # Documented layout: 0x01 || nonce(12) || AES-GCM(JCS(personal), aad=record_id)
    assert blob[0] == 1
    assert len(blob) == 1 + 12 + len(plaintext) + 16
    assert AESGCM(KEY).decrypt(blob[1:13], blob[13:], b"R1") == plaintext
    assert decrypt_personal(KEY, "R1", encrypt_personal(KEY, "R1", PERSONAL)) == PERSONAL
    assert c.decrypt("R1", c.encrypt("R1", {})) == {}


def test_cipher_encrypt_canonical() -> None:
    c = PersonalCipher(KEY)
    blob = c.encrypt_canonical("R9", canonical.dumps_strict(PERSONAL))
    assert c.decrypt("R9", blob) == PERSONAL
    with pytest.raises(CryptoError, match="not an object"):
        c.decrypt("R9", c.encrypt_canonical("R9", b"[1,2]"))


def test_cipher_nonce_is_fresh() -> None:
    c = PersonalCipher(KEY)
    blobs = [c.encrypt("R1", PERSONAL) for _ in range(20)]
    nonces = {b[1:13] for b in blobs}
    assert len(nonces) == len(blobs)
    assert len({b[13:] for b in blobs}) == len(blobs)


def test_cipher_wrong_key_and_record() -> None:
    blob = PersonalCipher(KEY).encrypt("R1", PERSONAL)
    with pytest.raises(CryptoError, match="wrong data key"):
        PersonalCipher(bytes(32)).decrypt("R1", blob)
    with pytest.raises(CryptoError):
        PersonalCipher(KEY).decrypt("R2", blob)  # AAD binds the blob to its record
    with pytest.raises(CryptoError):
        PersonalCipher(KEY).decrypt("R1 ", blob)


def test_cipher_rejects_every_tampering() -> None:
    c = PersonalCipher(KEY)
    blob = c.encrypt("R1", {"n": "x"})
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[i] ^= bit
            with pytest.raises(CryptoError):
                c.decrypt("R1", bytes(tampered))
    for n in range(len(blob)):
        with pytest.raises(CryptoError):
            c.decrypt("R1", blob[:n])
    with pytest.raises(CryptoError):
        c.decrypt("R1", blob + b"\x00")


@pytest.mark.parametrize("version", [0, 2, 255])
def test_cipher_unknown_version(version: int) -> None:
    c = PersonalCipher(KEY)
    blob = bytes((version,)) + c.encrypt("R1", PERSONAL)[1:]
    with pytest.raises(CryptoError, match=f"unknown format version {version}"):
        c.decrypt("R1", blob)


def test_cipher_repr_hides_key_and_checks_length() -> None:
    c = PersonalCipher(KEY)
    for text in (repr(c), str(c), f"{c}"):
        assert KEY.hex() not in text.lower()
    for bad in (b"", bytes(16), bytes(31), bytes(33)):
        with pytest.raises(ConfigError):
            PersonalCipher(bad)


def test_cipher_error_messages_carry_no_plaintext() -> None:
    c = PersonalCipher(KEY)
    blob = c.encrypt("R1", PERSONAL)
    with pytest.raises(CryptoError) as exc:
        PersonalCipher(bytes(32)).decrypt("R1", blob)
    message = str(exc.value)
    assert "R1" in message
    for value in ("李雷", "138", KEY.hex(), json.dumps(PERSONAL)):
        assert value not in message


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 33, bytearray(32), "00" * 32])
def test_an_order_key_is_exactly_32_bytes(bad: object) -> None:
    with pytest.raises(ValueError, match="an order key is 32 bytes"):
        OrderKey(bad)  # type: ignore[arg-type]


def test_order_key_salts_are_hkdf_expand_of_the_order_key() -> None:
    """The derivation a verifier repeats from a disclosed order key (docs/bundle.md step 3)."""
    key = bytes(range(32))
    order = OrderKey(key)
    for rid in ("O1:order", "ré:ship", ""):
        record_salt = hmac.new(key, b"record:" + rid.encode() + b"\x01", "sha256").digest()
        assert order.record_salt(rid) == record_salt == hkdf_expand(key, b"record:" + rid.encode(), 32)
        assert order.personal_salt(rid) == hkdf_expand(key, b"personal:" + rid.encode(), 32)
        assert order.salts(rid) == (order.record_salt(rid), order.personal_salt(rid))
    assert order.key == key and "OrderKey(<hidden>)" == repr(order)
