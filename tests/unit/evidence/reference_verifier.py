"""An independent bundle verifier, written from docs/bundle.md alone.

It imports nothing from `ledger`: the JSON reading, the document rules, the leaf rule, the
salt derivation, RFC 9162 inclusion proofs, RFC 3339 times and the chain checks are all
written here again from the page, with hashlib, hmac, rfc8785 and web3 (chain reads only).
`test_bundle_mutants.py` checks that it and `ledger verify` reach the same outcome on every
mutant of a real bundle: where they disagree, the page is not precise enough, or one of the
two does not do what it says.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound

HEX32 = re.compile(r"[0-9a-f]{64}")
HASH = re.compile(r"0x[0-9a-f]{64}")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
                  r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
HEAD_ANCHORED = Web3.keccak(text="HeadAnchored(uint64,bytes32,uint64,address)")
ANCHORED_AT = Web3.keccak(text="anchoredAt(uint64,bytes32)")[:4]


class Malformed(Exception):
    pass


@dataclass
class Outcome:
    status: str  # malformed | not_verified | head_unchecked | unpinned | verified
    failed_records: set[int] = field(default_factory=set)  # positions in `records`
    head_failed: bool = False


# --------------------------------------------------------------------------- reading


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise Malformed("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise Malformed(name)


def read_json(data: bytes, fmt: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    if text.startswith("\ufeff"):
        raise Malformed("byte order mark")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ValueError:
        raise Malformed("not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise Malformed("format")
    return doc


def _members(obj: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    """The object's non-null members, after checking there are no others and none missing."""
    if not isinstance(obj, dict) or set(obj) - required - optional:
        raise Malformed("members")
    present = {k: v for k, v in obj.items() if v is not None or k in required}
    if required - set(present):
        raise Malformed("missing")
    return present


def _integer(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= 2**63 - 1:
        raise Malformed("integer")
    return v


def _form(v: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(v, str) or not pattern.fullmatch(v):
        raise Malformed("form")
    return v


def _address(v: Any) -> str:
    if not Web3.is_checksum_address(_form(v, ADDRESS)):
        raise Malformed("checksum")
    return str(v)


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise Malformed("string")
    return v


def _object(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Malformed("object")
    return v


def time_ns(v: Any) -> int:
    """An RFC 3339 time as the page defines it, in nanoseconds; ValueError otherwise."""
    m = TIME.fullmatch(v.strip()) if isinstance(v, str) else None
    if m is None:
        raise ValueError(v)
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    seconds = calendar.timegm(datetime.datetime(y, mo, d, hh, mi, ss).timetuple())
    zone = m.group(8)
    if zone not in ("Z", "z"):
        seconds -= (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 10**9 + int((m.group(7) or ".")[1:].ljust(9, "0"))


def read_bundle(data: bytes) -> dict[str, Any]:
    doc = _members(read_json(data, "evidence-escrow/bundle/v1"),
                   {"format", "generated_at", "selection", "anchor", "records"}, {"order_keys", "erasures"})
    _string(doc["generated_at"])
    selection = _members(doc["selection"], set(), {"order_id", "merchant_id", "since", "until", "audit"})
    for name, v in selection.items():
        _string(v)
        if name in ("since", "until"):
            try:
                time_ns(v)
            except ValueError:
                raise Malformed(name) from None
    a = _members(doc["anchor"], {"chain_id", "contract", "tree_size", "root", "tx_hash", "block_number",
                                 "block_hash", "block_timestamp"}, set())
    for name in ("chain_id", "tree_size", "block_number", "block_timestamp"):
        _integer(a[name])
    _address(a["contract"])
    _form(a["root"], HEX32)
    _form(a["tx_hash"], HASH)
    _form(a["block_hash"], HASH)
    keys = _object(doc.get("order_keys", {}))
    for v in keys.values():
        _form(v, HEX32)
    records = doc["records"]
    if not isinstance(records, list) or not records:
        raise Malformed("records")
    entries = [_record_entry(r) for r in records]
    if any(b["index"] <= a_["index"] for a_, b in zip(entries, entries[1:], strict=False)):
        raise Malformed("order")
    erasures = doc.get("erasures", [])
    if not isinstance(erasures, list):
        raise Malformed("erasures")
    erasures = [_record_entry(r, erased_allowed=False) for r in erasures]
    return {"selection": selection, "anchor": a, "order_keys": keys, "records": entries, "erasures": erasures}


def _record_entry(r: Any, erased_allowed: bool = True) -> dict[str, Any]:
    if erased_allowed and isinstance(r, dict) and r.get("erased") is not None:
        e = _members(r, {"index", "leaf_hash", "inclusion_proof", "erased"}, set())
        _integer(e["index"])
        _form(e["leaf_hash"], HEX32)
        if not isinstance(e["inclusion_proof"], list):
            raise Malformed("proof")
        for p in e["inclusion_proof"]:
            _form(p, HEX32)
        mark = _members(e["erased"], {"at", "record_id"}, set())
        _string(mark["record_id"])
        try:
            time_ns(mark["at"])
        except ValueError:
            raise Malformed("erased.at") from None
        return e
    e = _members(r, {"index", "leaf_hash", "inclusion_proof", "record", "salt"},
                 {"personal_commitment", "personal", "personal_salt"})
    _integer(e["index"])
    for name in ("leaf_hash", "salt", "personal_commitment", "personal_salt"):
        if name in e:
            _form(e[name], HEX32)
    if not isinstance(e["inclusion_proof"], list):
        raise Malformed("proof")
    for p in e["inclusion_proof"]:
        _form(p, HEX32)
    _object(e["record"])
    if "personal" in e:
        _object(e["personal"])
    if ("personal" in e) != ("personal_salt" in e) or ("personal" in e and "personal_commitment" not in e):
        raise Malformed("personal")
    return e


def read_trust(data: bytes) -> dict[str, Any]:
    t = _members(read_json(data, "evidence-escrow/trust/v1"),
                 {"format", "chain_id", "contract", "deployment_block", "deployment_tx"}, {"deployer"})
    _integer(t["chain_id"])
    _integer(t["deployment_block"])
    _address(t["contract"])
    _form(t["deployment_tx"], HASH)
    if "deployer" in t:
        _address(t["deployer"])
    return t


# --------------------------------------------------------------------------- records


def jcs(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except Exception:  # noqa: BLE001 - anything JCS cannot represent
        return None


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2, or None when the path cannot be one for (index, size)."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def record_fails(e: dict[str, Any], size: int, root: bytes, keys: dict[str, str],
                 selection: dict[str, str]) -> bool:
    record = e["record"]
    return _content_fails(e, size, root, keys) or _outside(record, selection)


def _content_fails(e: dict[str, Any], size: int, root: bytes, keys: dict[str, str]) -> bool:
    record = e["record"]
    if "salt" in record or "personal_commitment" in record:
        return True
    committed = dict(record, salt=e["salt"])
    if "personal_commitment" in e:
        committed["personal_commitment"] = e["personal_commitment"]
    text = jcs(committed)
    if text is None:
        return True
    rid, oid = record.get("id"), record.get("order_id")
    if isinstance(rid, str) and isinstance(oid, str) and oid in keys:
        expected = hmac.new(bytes.fromhex(keys[oid]), b"record:" + rid.encode() + b"\x01", "sha256").digest()
        if expected.hex() != e["salt"]:
            return True
    if "personal" in e:
        personal = jcs(e["personal"])
        if personal is None or hashlib.sha256(bytes.fromhex(e["personal_salt"]) + personal).hexdigest() != \
                e["personal_commitment"]:
            return True
    leaf = hashlib.sha256(b"\x00" + text).digest()
    path = [bytes.fromhex(p) for p in e["inclusion_proof"]]
    return leaf.hex() != e["leaf_hash"] or root_from_path(leaf, e["index"], size, path) != root


def erased_fails(e: dict[str, Any], b: dict[str, Any], size: int, root: bytes) -> bool:
    """Steps E1 to E4 of the page for an erased entry."""
    mark = e["erased"]
    cited = [x for x in b["records"] + b["erasures"] if "erased" not in x
             and x["record"].get("id") == mark["record_id"]]
    if not cited:
        return True
    er = cited[0]
    in_records = any(x is er for x in b["records"])
    if er["record"].get("kind") != "erasure" or (
            record_fails(er, size, root, b["order_keys"], b["selection"]) if in_records
            else _content_fails(er, size, root, b["order_keys"])):
        return True
    listed = er["record"].get("erased")
    named = [m for m in listed if isinstance(m, dict) and m.get("index") == e["index"]] \
        if isinstance(listed, list) else []
    if not named or named[0].get("leaf") != e["leaf_hash"] or er["index"] <= e["index"]:
        return True
    if er["record"].get("ts") != mark["at"]:
        return True
    for name in ("order_id", "merchant_id"):
        if name in b["selection"] and er["record"].get(name) != b["selection"][name]:
            return True
    leaf = bytes.fromhex(e["leaf_hash"])
    path = [bytes.fromhex(p) for p in e["inclusion_proof"]]
    return root_from_path(leaf, e["index"], size, path) != root


def _outside(record: dict[str, Any], selection: dict[str, str]) -> bool:
    for name in ("order_id", "merchant_id"):
        if name in selection and record.get(name) != selection[name]:
            return True
    if "since" not in selection and "until" not in selection:
        return False
    try:
        ts = time_ns(record.get("ts"))
    except ValueError:
        return True
    return ("since" in selection and ts < time_ns(selection["since"])) or (
        "until" in selection and ts >= time_ns(selection["until"]))


# --------------------------------------------------------------------------- head


def _receipt(w3: Web3, tx: str) -> Any:
    try:
        return w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
    except TransactionNotFound:
        return None


def head_fails(a: dict[str, Any], w3: Web3, trust: dict[str, Any] | None) -> bool:
    if w3.eth.chain_id != a["chain_id"] or not w3.eth.get_code(a["contract"]):
        return True
    if trust is not None:
        d = _receipt(w3, trust["deployment_tx"])
        if d is None or d["status"] != 1 or d.get("contractAddress") != trust["contract"] or (
                d["blockNumber"] != trust["deployment_block"]) or (
                "deployer" in trust and d["from"] != trust["deployer"]):
            return True
    call = ANCHORED_AT + a["tree_size"].to_bytes(32, "big") + bytes.fromhex(a["root"])
    try:
        out = bytes(w3.eth.call({"to": a["contract"], "data": call}))
    except Exception:  # noqa: BLE001 - it reverts: not an EvidenceLog
        return True
    words = [int.from_bytes(out[i:i + 32], "big") for i in range(0, 96, 32)]
    if len(out) < 96 or words[0] != 1:  # anything else, or not anchored
        return True
    if words[1] != a["block_timestamp"] or words[2] != a["block_number"]:
        return True
    r = _receipt(w3, a["tx_hash"])
    if r is None or r["status"] != 1 or r["blockNumber"] != a["block_number"] or (
            "0x" + bytes(r["blockHash"]).hex() != a["block_hash"]):
        return True
    topics = [bytes(HEAD_ANCHORED), a["tree_size"].to_bytes(32, "big"), bytes.fromhex(a["root"])]
    if not any(log["address"] == a["contract"] and [bytes(t) for t in log["topics"][:3]] == topics
               for log in r["logs"]):
        return True
    try:
        block = w3.eth.get_block(a["block_number"])
    except BlockNotFound:
        return True
    return "0x" + bytes(block["hash"]).hex() != a["block_hash"] or block["timestamp"] != a["block_timestamp"]


# --------------------------------------------------------------------------- the verdict


def verify(data: bytes, w3: Web3 | None, *, trust: bytes | None = None, chain_id: int | None = None,
           contract: str | None = None) -> Outcome:
    """The outcome docs/bundle.md gives `data` on the node `w3` (None: offline), pinned by a
    trust file or by a chain id and a contract."""
    try:
        b = read_bundle(data)
        t = None if trust is None else read_trust(trust)
    except Malformed:
        return Outcome("malformed")
    if t is not None:
        chain_id, contract = t["chain_id"], t["contract"]
    a = b["anchor"]
    size, root = a["tree_size"], bytes.fromhex(a["root"])
    failed = {i for i, e in enumerate(b["records"])
              if (erased_fails(e, b, size, root) if "erased" in e
                  else record_fails(e, size, root, b["order_keys"], b["selection"]))}
    head_failed = (chain_id is not None and a["chain_id"] != chain_id) or (
        contract is not None and a["contract"] != contract)
    if not head_failed and w3 is not None:
        head_failed = head_fails(a, w3, t)
    if failed or head_failed:
        status = "not_verified"
    elif w3 is None:
        status = "head_unchecked"
    else:
        status = "verified" if chain_id is not None and contract is not None else "unpinned"
    return Outcome(status, failed, head_failed)
