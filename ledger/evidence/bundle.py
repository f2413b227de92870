"""Evidence bundles: export disclosed records with proofs; verify them against a chain.

The format is specified in docs/bundle.md. A verifier needs only the bundle, a chain and
what it trusts (`ledger.evidence.trust.Pin`): it recomputes every leaf from the disclosed
content, checks every inclusion proof against the bundle's tree head and every record
against the bundle's selection, and then checks the head (`ledger.evidence.bundle_head`):
that the EvidenceLog is the pinned one, anchored exactly this head, in the transaction and
block the bundle states. Nothing from the platform is trusted.

Verification takes a well-formed `Bundle` (`ledger.evidence.bundle_format` parses one and
refuses a malformed document outright); what it decides is whether the bundle tells the
truth, and it reports every way it does not, record by record. Its `Verdict.status` keeps
"something is false" apart from "the head was not checked" and "the anchor was not pinned".
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger._internal import canonical, jsondoc
from ledger._internal.merkle import verify_inclusion
from ledger._internal.rfc3339 import parse_time_ns, rfc3339, ts_ns
from ledger.errors import BundleError, InclusionProofError
from ledger.evidence.bundle_format import (
    FORMAT,
    FORMAT_V2,
    Bundle,
    BundleAnchor,
    BundleRecord,
    Completeness,
    Erased,
    Selection,
    hex_bytes,
)
from ledger.evidence.bundle_head import index_failures, pin_failures, verify_head_on_chain
from ledger.evidence.completeness import completeness_failures, completeness_for
from ledger.evidence.leaf import committed_leaf, personal_commitment_of
from ledger.evidence.master_secret import OrderKey
from ledger.evidence.trust import Pin

__all__ = [
    "STATUSES", "RecordVerdict", "Verdict", "build_bundle", "export_bundle", "verify_bundle",
    "verify_records",
]

_logger = logging.getLogger(__name__)

def _h(b: bytes) -> str:
    return b.hex()


# --------------------------------------------------------------------------- export


def _head(anchor: Any) -> BundleAnchor:
    """The bundle's tree head: a confirmed anchor row (one that knows where it was mined)."""
    if anchor.block_hash is None or anchor.block_number is None or anchor.block_timestamp is None:
        raise BundleError(f"the anchor of head size {anchor.size} is not confirmed yet: run `ledger anchor`")
    return BundleAnchor(
        chain_id=anchor.chain_id, contract=anchor.contract, tree_size=anchor.size, root=_h(anchor.root),
        tx_hash="0x" + _h(anchor.tx_hash), block_number=anchor.block_number,
        block_hash="0x" + _h(anchor.block_hash), block_timestamp=anchor.block_timestamp,
    )  # fmt: skip


def build_bundle(
    store: Any,
    stored: Sequence[Any],
    anchor: Any,
    *,
    selection: Selection,
    disclose_personal: bool = False,
    completeness: tuple[bytes, Completeness] | None = None,
    paths: bool = True,
) -> Bundle:
    """A bundle for `stored` records (all covered by the confirmed `anchor` row), in log order:
    v2 with `completeness` (the index root and the proof, `completeness_for`), where each
    record's inclusion path is optional (`paths`); v1 without. A record of an erased order is an
    erased entry; the erasure records they cite and `stored` lacks go to `erasures`."""
    tree = store.tree
    keys = store.keys.states([r.order_id for r in stored], create=False)
    ids = {r.id for r in stored}

    def path(index: int) -> list[str]:
        return [_h(p) for p in tree.inclusion_proof(index, anchor.size)]

    out_records, cited = [], {}
    for r in sorted(stored, key=lambda r: r.index):
        if r.index >= anchor.size:
            raise BundleError(f"record {r.id!r} (leaf {r.index}) is not covered by head {anchor.size}")
        if r.erased is not None:
            mark = Erased(at=r.erased[0], record_id=r.erased[1])
            out_records.append(BundleRecord(index=r.index, leaf_hash=_h(r.leaf),
                                            inclusion_proof=path(r.index) if paths else None, erased=mark))
            cited[r.erased[1]] = r.order_id
            continue
        item = _disclosed(store, r, keys[r.order_id].key, path(r.index) if paths else None, disclose_personal)
        out_records.append(item)
    erasures = [_erasure_entry(store, rid, oid, anchor.size, keys[oid].key, path)
                for rid, oid in sorted(cited.items()) if rid not in ids]
    head = _head(anchor)
    if completeness is not None:
        head.index_root = _h(completeness[0])
    return Bundle(
        format=FORMAT if completeness is None else FORMAT_V2, generated_at=rfc3339(), selection=selection,
        anchor=head, records=out_records,
        order_keys={r.order_id: _h(keys[r.order_id].key.key) for r in stored},
        completeness=None if completeness is None else completeness[1], erasures=erasures or None,
    )


def _disclosed(store: Any, r: Any, key: OrderKey, path: list[str] | None,
               disclose_personal: bool) -> BundleRecord:
    """The entry of a record with its content: public fields, salt and, when asked, personal fields."""
    item = BundleRecord(index=r.index, leaf_hash=_h(r.leaf), inclusion_proof=path, record=r.public,
                        salt=_h(key.record_salt(r.id)))
    if r.personal_commitment is not None:
        item.personal_commitment = _h(r.personal_commitment)
        if disclose_personal:
            item.personal = store.personal(r)
            item.personal_salt = _h(key.personal_salt(r.id))
    return item


def _erasure_entry(store: Any, record_id: str, order_id: str, size: int, key: OrderKey,
                   path: Callable[[int], list[str]]) -> BundleRecord:
    """The erasure record erased entries cite, with its inclusion path (it is outside the selection)."""
    r = store.record_by_id(record_id)
    if r is None or r.index >= size:
        where = "is missing from the store" if r is None else f"(leaf {r.index}) is not anchored yet"
        raise BundleError(f"order {order_id!r} was erased; its erasure record {record_id!r} {where}: a "
                          "bundle shows the erasure only with it (run `ledger anchor`)")
    return _disclosed(store, r, key, path(r.index), False)


def export_bundle(
    store: Any,
    chain_id: int,
    contract: str,
    *,
    order_id: str | None = None,
    merchant_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    disclose_personal: bool = False,
    paths: bool = False,
    completeness: bool = True,
) -> tuple[Bundle, list[str]]:
    """Select records and build a bundle against the latest confirmed head: v2 (completeness
    proven, each record's inclusion path only with `paths`) for one order or one merchant when
    that head was anchored with its index root, v1 otherwise (or with `completeness` False, for a
    verifier that reads v1 only).

    Returns (bundle, ids of selected records left out because no confirmed head covers
    them yet).
    """
    anchor = store.latest_confirmed(chain_id, contract)
    if anchor is None:
        raise BundleError(f"nothing anchored on chain {chain_id} at {contract}: run `ledger anchor`")
    selection = Selection(order_id=order_id, merchant_id=None if order_id else merchant_id,
                          since=since or None, until=until or None)
    if order_id is not None:
        selected = store.records_for_order(order_id)
        if since or until:
            lo = parse_time_ns(since) if since else None
            hi = parse_time_ns(until) if until else None
            selected = [r for r in selected if (lo is None or ts_ns(r.ts) >= lo)
                        and (hi is None or ts_ns(r.ts) < hi)]
    elif merchant_id is not None:
        selected = store.records_for_merchant(merchant_id, since, until)
    else:
        selected = store.records_in_range(since, until)
    if not selected:
        raise BundleError(f"no records match {jsondoc.to_json(selection) or 'the selection'}")
    covered = [r for r in selected if r.index < anchor.size]
    left_out = [r.id for r in selected if r.index >= anchor.size]
    if not covered:
        raise BundleError(
            f"none of the {len(selected)} matching record(s) is anchored yet: run `ledger anchor`"
        )
    proof = _completeness(store, anchor, selection) if completeness else None
    bundle = build_bundle(store, covered, anchor, selection=selection, disclose_personal=disclose_personal,
                          completeness=proof, paths=paths or proof is None)
    _logger.info("exported a bundle of %d record(s) (%s) against head size %d on chain %d; "
                 "%d newer record(s) left out, not anchored yet", len(bundle.records),
                 jsondoc.to_json(selection) or "every record", anchor.size, chain_id, len(left_out))
    return bundle, left_out


def _completeness(store: Any, anchor: Any, selection: Selection) -> tuple[bytes, Completeness] | None:
    """The completeness proof of a one-order or one-merchant selection at the anchor's head, when
    the head was anchored with its index root (None: a v1 bundle)."""
    anchored = getattr(anchor, "index_root", None)
    if anchored is None or (selection.order_id is None and selection.merchant_id is None):
        return None
    root, proof = completeness_for(store, selection, anchor.size)
    if root != anchored:
        raise BundleError(f"the store's index at size {anchor.size} has root {root.hex()}, but head "
                          f"{anchor.size} was anchored with index root {anchored.hex()}: the store was "
                          "altered")
    return root, proof


# --------------------------------------------------------------------------- verify

#: `Verdict.status` values, from worst: something in the bundle is false; nothing is false but
#: the head was not checked on a chain (offline); the head checked out on the contract the
#: bundle names, but nothing pinned that contract (anyone can deploy an EvidenceLog); all true.
STATUSES = ("not_verified", "head_unchecked", "unpinned", "verified")


@dataclass
class RecordVerdict:
    index: int
    record_id: str | None  # None when the record's id is not a string (erased: as its erasure names it)
    failures: list[str] = field(default_factory=list)
    erased_at: str | None = None  # an erased entry: when its content was erased (its erasure record's ts)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Verdict:
    """The outcome of verifying one bundle."""

    head_failures: list[str]
    records: list[RecordVerdict]
    chain_id: int
    contract: str
    tree_size: int
    anchored_timestamp: int | None
    head_checked: bool  # asked the chain (not offline)
    pinned: bool  # the chain and the contract were both pinned
    #: v2: what the completeness proof gets wrong (empty: proven); None: a v1 bundle, not proven
    completeness_failures: list[str] | None = None

    @property
    def completeness(self) -> str:
        """``proven`` (the records are all of the selection's as of the head), ``failed``, or
        ``not proven`` (a v1 bundle: each record is in the log, but others may be missing)."""
        if self.completeness_failures is None:
            return "not proven"
        return "failed" if self.completeness_failures else "proven"

    @property
    def status(self) -> str:
        """One of `STATUSES`."""
        if self.head_failures or self.completeness_failures or not all(r.ok for r in self.records):
            return "not_verified"
        if not self.head_checked:
            return "head_unchecked"
        return "verified" if self.pinned else "unpinned"

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tree_size": self.tree_size,
            "anchored_timestamp": self.anchored_timestamp,
            "head_failures": self.head_failures,
            "completeness": self.completeness,
            "completeness_failures": self.completeness_failures or [],
            "records": [
                {"index": r.index, "id": r.record_id, "ok": r.ok, "failures": r.failures,
                 "erased": r.erased_at} for r in self.records
            ],
        }


def verify_records(
    bundle: Bundle, progress: Callable[[int], None] | None = None
) -> tuple[list[RecordVerdict], int, bytes]:
    """Offline part: leaves, inclusion proofs and the selection against the bundle's own head;
    an erased entry against the erasure record it cites (`_verify_erased`)."""
    size, root = bundle.anchor.tree_size, hex_bytes(bundle.anchor.root)
    order_keys = bundle.order_keys or {}
    found: dict[int, RecordVerdict] = {}
    cited: dict[str, tuple[BundleRecord, RecordVerdict]] = {}  # record id -> a disclosed record's entry
    for item in bundle.records:
        if item.erased is None:
            assert item.record is not None  # BundleRecord.__post_init__
            found[item.index] = v = _verify_one(item, size, root, order_keys)
            v.failures.extend(_selection_failures(item.record, bundle.selection))
            cited.setdefault(v.record_id or "", (item, v))
    for item in bundle.erasures or ():
        v = _verify_one(item, size, root, order_keys)
        cited.setdefault(v.record_id or "", (item, v))
    verdicts: list[RecordVerdict] = []
    for item in bundle.records:
        verdict = found.get(item.index) or _verify_erased(item, cited, size, root, bundle.selection)
        _logger.debug("leaf %d (record %s): %s", verdict.index, verdict.record_id,
                      "; ".join(verdict.failures) or ("erased" if verdict.erased_at else "ok"))
        verdicts.append(verdict)
        if progress is not None:
            progress(1)
    return verdicts, size, root


def _verify_erased(item: BundleRecord, cited: dict[str, tuple[BundleRecord, RecordVerdict]], size: int,
                   root: bytes, selection: Selection) -> RecordVerdict:
    """Steps E1-E4 of docs/bundle.md for an erased entry: the erasure record it cites is in the
    bundle, verifies, is an erasure record of the selection logged after the entry, names the
    entry's index and leaf hash, and was written at `erased.at`."""
    mark = item.erased
    assert mark is not None
    v = RecordVerdict(item.index, None, erased_at=mark.at)
    entry, er_v = cited.get(mark.record_id, (None, None))
    er = entry.record if entry is not None else None
    if entry is None or er is None or er_v is None:
        v.failures.append(f"erased without proof: the bundle holds no erasure record {mark.record_id!r} (an "
                          "entry is erased only by an erasure record of the log naming its leaf)")
    elif er.get("kind") != "erasure":
        v.failures.append(f"erased without proof: {mark.record_id!r} is a {er.get('kind')!r} record, not an "
                          "erasure record")
    elif er_v.failures:
        v.failures.append(f"erased without proof: its erasure record {mark.record_id!r} (leaf {entry.index}) "
                          "does not verify")
    else:
        v.record_id, problems = _named(er, entry.index, item)
        v.failures += problems
        if er.get("ts") != mark.at:
            v.failures.append(f"wrong erasure time: erased.at {mark.at} is not the erasure record's ts "
                              f"{_member(er, 'ts')}")
        v.failures += [f"outside the selection: the erasure record's {name} is {_member(er, name)}, "
                       f"selection.{name} is {wanted!r}" for name in ("order_id", "merchant_id")
                       if (wanted := getattr(selection, name)) is not None and er.get(name) != wanted]
    leaf = hex_bytes(item.leaf_hash)
    v.failures.extend(_proof_failures(item, leaf, leaf, size, root))
    return v


def _named(erasure: dict[str, Any], erasure_index: int, item: BundleRecord) -> tuple[str | None, list[str]]:
    """(the erased record's id as the erasure record names it, what is wrong with the naming)."""
    listed = erasure.get("erased")
    named = [e for e in listed if isinstance(e, dict) and e.get("index") == item.index] \
        if isinstance(listed, list) else []
    rid = named[0].get("id") if named and isinstance(named[0].get("id"), str) else None
    who = f"erased without proof: erasure record {erasure.get('id')!r}"
    if not named:
        return None, [f"{who} does not name leaf {item.index}"]
    problems = []
    if named[0].get("leaf") != item.leaf_hash:
        problems.append(f"{who} names leaf {item.index} as {named[0].get('leaf')}, the bundle states "
                        f"{item.leaf_hash}")
    if erasure_index <= item.index:
        problems.append(f"{who} is leaf {erasure_index}; an erasure erases only records logged before it")
    return rid, problems


def _verify_one(item: BundleRecord, size: int, root: bytes, order_keys: dict[str, str]) -> RecordVerdict:
    """Steps 1-5 of docs/bundle.md for one record entry; every failure is named."""
    record = item.record
    assert record is not None and item.salt is not None  # not erased (BundleRecord.__post_init__)
    rid = record.get("id") if isinstance(record.get("id"), str) else None
    v = RecordVerdict(item.index, rid)
    if "salt" in record or "personal_commitment" in record:
        v.failures.append("record carries reserved field 'salt' or 'personal_commitment'")
        return v
    salt = hex_bytes(item.salt)
    pc = None if item.personal_commitment is None else hex_bytes(item.personal_commitment)
    try:
        _, computed_leaf = committed_leaf(record, salt, pc)
    except (TypeError, ValueError) as exc:
        v.failures.append(f"record cannot be canonicalised: {exc}")
        return v
    wrong_salt = _wrong_salt(record, rid, salt, order_keys)
    if wrong_salt is not None:
        v.failures.append(wrong_salt)
    v.failures.extend(_personal_failures(item, pc))
    stated_leaf = hex_bytes(item.leaf_hash)
    if computed_leaf != stated_leaf and wrong_salt is None:  # a wrong salt already says why
        v.failures.append(
            f"tampered content: the record hashes to leaf {computed_leaf.hex()}, "
            f"the bundle states {stated_leaf.hex()}"
        )
    v.failures.extend(_proof_failures(item, computed_leaf, stated_leaf, size, root))
    return v


def _wrong_salt(
    record: dict[str, Any], rid: str | None, salt: bytes, order_keys: dict[str, str]
) -> str | None:
    """Step 3: with the order's key disclosed, the salt must be the one derived from it."""
    order_id = record.get("order_id")
    okey = order_keys.get(order_id) if isinstance(order_id, str) else None
    if okey is None or rid is None:
        return None
    if hmac.compare_digest(OrderKey(hex_bytes(okey)).record_salt(rid), salt):
        return None
    return (f"wrong salt: not the salt derived from order {order_id!r}'s key for record "
            f"{rid!r} (the salt, or the record's id or order_id, was altered)")


def _personal_failures(item: BundleRecord, pc: bytes | None) -> list[str]:
    """Step 4: disclosed personal data must match the commitment inside the leaf (the model
    guarantees that disclosed data comes with its salt and a commitment)."""
    if item.personal is None:
        return []
    assert item.personal_salt is not None and pc is not None  # BundleRecord.__post_init__
    try:
        got = personal_commitment_of(canonical.dumps_strict(item.personal), hex_bytes(item.personal_salt))
    except (TypeError, ValueError) as exc:
        return [f"tampered personal data: it cannot be canonicalised: {exc}"]
    if got != pc:
        return ["tampered personal data: does not match its commitment "
                f"(expected {pc.hex()}, computed {got.hex()})"]
    return []


def _proof_failures(item: BundleRecord, computed_leaf: bytes, stated_leaf: bytes, size: int,
                    root: bytes) -> list[str]:
    """Step 5: the recomputed leaf must be in the tree at `index`. When it is not but the
    stated leaf is, the content was changed (already reported), not the proof."""
    if item.inclusion_proof is None:  # v2: the record's leaf is bound through the index instead
        return []
    proof = [hex_bytes(p) for p in item.inclusion_proof]
    try:
        verify_inclusion(computed_leaf, item.index, size, proof, root)
    except InclusionProofError:
        try:
            verify_inclusion(stated_leaf, item.index, size, proof, root)
        except InclusionProofError as exc:
            return [f"bad inclusion proof: {exc}"]
    return []


def _selection_failures(record: dict[str, Any], selection: Selection) -> list[str]:
    """Step 6: a record must be one the bundle's selection says its records are."""
    failures = []
    for name in ("order_id", "merchant_id"):
        wanted = getattr(selection, name)
        if wanted is not None and record.get(name) != wanted:
            failures.append(f"outside the selection: record.{name} is {_member(record, name)}, "
                            f"selection.{name} is {wanted!r}")
    if selection.since is None and selection.until is None:
        return failures
    ts = record.get("ts")
    try:
        at = parse_time_ns(ts)  # type: ignore[arg-type] # anything but a valid time is a ValueError
    except ValueError:
        return failures + [f"outside the selection: record.ts is {_member(record, 'ts')}, not an RFC 3339 "
                           "time to compare with the selection's bounds"]
    if selection.since is not None and at < parse_time_ns(selection.since):
        failures.append(f"outside the selection: record.ts {ts} is before selection.since {selection.since}")
    if selection.until is not None and at >= parse_time_ns(selection.until):
        failures.append(f"outside the selection: record.ts {ts} is not before selection.until "
                        f"{selection.until}")
    return failures


def _member(record: dict[str, Any], name: str) -> str:
    return repr(record[name]) if name in record else "missing"


def verify_bundle(
    bundle: Bundle,
    w3: Any | None,
    progress: Callable[[int], None] | None = None,
    *,
    pin: Pin | None = None,
) -> Verdict:
    """Verify a bundle: every record offline, then its head against `pin` and, unless `w3` is
    None (offline), against the chain the bundle names."""
    records, size, _root = verify_records(bundle, progress)
    head = bundle.anchor
    head_failures, timestamp = pin_failures(head, pin), None
    if w3 is not None and not head_failures:
        head_failures, timestamp = verify_head_on_chain(head, w3, pin)
        if not head_failures and head.index_root is not None:
            head_failures = index_failures(w3, head, hex_bytes(head.index_root))
    complete = None if bundle.completeness is None else completeness_failures(bundle)
    verdict = Verdict(head_failures, records, head.chain_id, head.contract, size, timestamp,
                      head_checked=w3 is not None, pinned=pin is not None and pin.complete,
                      completeness_failures=complete)
    _logger.info("verified a bundle against head size %d on chain %d: %d/%d record(s) ok, "
                 "%d head failure(s): %s", size, head.chain_id, sum(r.ok for r in records),
                 len(records), len(head_failures), verdict.status)
    return verdict
