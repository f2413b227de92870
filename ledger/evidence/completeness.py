"""Completeness of a v2 bundle: its records are *all* the log holds for its selection, as of
its head (docs/bundle.md, "Completeness"; the index itself: `ledger.evidence.index`).

Export (`completeness_for`) takes the key's proof from the store's index; verification
(`completeness_failures`) needs only the bundle: the shard listing and its path lead to the
anchored index root, the key's value commits to the bucket (an order) or to the directory and
the day buckets (a merchant), and the disclosed records are exactly the entries the selection
covers. Each failure names what was dropped, added, moved, replaced or cut short.
`extends_failures` checks that a later bundle of the same order or merchant extends an
earlier one: nothing that was there at the earlier head vanished or changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ledger._internal.rfc3339 import parse_time_ns
from ledger.errors import InclusionProofError
from ledger.evidence.bundle_format import Bundle, Completeness, Selection, hex_bytes
from ledger.evidence.index import (
    Entry,
    bucket_digest,
    day_of,
    directory_value,
    key_hash,
    root_from_shard,
    shard_of,
)

__all__ = ["completeness_failures", "completeness_for", "day_text", "extends_failures"]

_EPOCH = dt.date(1970, 1, 1)


def day_text(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def _day_number(text: str) -> int:
    return (dt.date.fromisoformat(text) - _EPOCH).days


def _entry_json(e: Entry) -> tuple[int, int, str]:
    return (e[0], e[1], e[2].hex())


def _bounds(selection: Selection) -> tuple[int | None, int | None]:
    return (
        None if selection.since is None else max(parse_time_ns(selection.since), 0),
        None if selection.until is None else max(parse_time_ns(selection.until), 0),
    )


def completeness_for(store: Any, selection: Selection, size: int) -> tuple[bytes, Completeness]:
    """The index root at `size` and the completeness proof of `selection` (one order, or one
    merchant in an optional time range)."""
    since, until = _bounds(selection)
    if selection.order_id is not None:
        p = store.index.order_proof(selection.order_id, size)
        extra: dict[str, Any] = {"entries": [_entry_json(e) for e in p.entries]}
    else:
        assert selection.merchant_id is not None
        p = store.index.merchant_proof(selection.merchant_id, size, since, until)
        extra = {
            "directory": [(day_text(d), c, g.hex()) for d, c, g in p.days],
            "days": {day_text(d): [_entry_json(e) for e in es] for d, es in p.day_entries.items()},
        }
    return p.root, Completeness(
        key=p.key,
        shard=[(k.hex(), v.hex()) for k, v in p.pairs],
        shard_path=[h.hex() for h in p.path],
        **extra,
    )


def _entries(raw: Sequence[tuple[int, int, str]]) -> list[Entry]:
    return [(i, t, hex_bytes(h)) for i, t, h in raw]


def _value(c: Completeness, index_root: bytes, failures: list[str]) -> bytes | None:
    """The key's value proven by the shard listing and its path (None: proven absent)."""
    kh = key_hash(c.key)
    shard = shard_of(kh)
    pairs = [(hex_bytes(k), hex_bytes(v)) for k, v in c.shard]
    if any(shard_of(k) != shard for k, _ in pairs) or any(
        a[0] >= b[0] for a, b in zip(pairs, pairs[1:], strict=False)
    ):
        failures.append(f"completeness.shard: not the sorted listing of shard {shard} (key {c.key!r})")
        return None
    try:
        got = root_from_shard(shard, pairs, [hex_bytes(h) for h in c.shard_path])
    except InclusionProofError as exc:
        failures.append(f"completeness.shard_path: {exc}")
        return None
    if got != index_root:
        failures.append(
            f"index proof: the shard of {c.key!r} and its path lead to {got.hex()}, not to "
            f"anchor.index_root {index_root.hex()} (the listing or the path was altered)"
        )
        return None
    return dict(pairs).get(kh)


def _expected(bundle: Bundle, c: Completeness, value: bytes | None, failures: list[str]) -> list[Entry]:
    """The committed entries the selection covers (the records the bundle must disclose)."""
    kh = key_hash(c.key)
    size = bundle.anchor.tree_size
    since, until = _bounds(bundle.selection)

    def inside(ts: int) -> bool:
        return (since is None or ts >= since) and (until is None or ts < until)

    if c.entries is not None:
        entries = _entries(c.entries)
        digest = bucket_digest(kh, entries) if entries else None
        if digest != value:
            failures.append(
                f"index proof: the bucket of {c.key!r} ({len(entries)} entries) is not the one "
                f"committed at head {size} ("
                + (
                    "it has no records there)"
                    if value is None
                    else "entries dropped, added, reordered or altered)"
                )
            )
        bad = [e for e in entries if e[0] >= size]
        failures += [f"index proof: entry at leaf {e[0]} is beyond head size {size}" for e in bad]
        return [e for e in entries if inside(e[1])]
    return _merchant_expected(c, kh, value, inside, since, until, failures)


def _merchant_expected(
    c: Completeness,
    kh: bytes,
    value: bytes | None,
    inside: Any,
    since: int | None,
    until: int | None,
    failures: list[str],
) -> list[Entry]:
    assert c.directory is not None and c.days is not None
    directory = [(_day_number(d), n, hex_bytes(g)) for d, n, g in c.directory]
    if (directory_value(kh, directory) if directory else None) != value:
        failures.append(
            f"index proof: the directory of {c.key!r} ({len(directory)} days) is not the one "
            "committed (days dropped, added or altered)"
        )
    committed = {d: (n, g) for d, n, g in directory}
    lo = None if since is None else day_of(since)
    hi = None if until is None else day_of(until - 1) if until > 0 else -1
    wanted = [d for d in sorted(committed) if (lo is None or d >= lo) and (hi is None or d <= hi)]
    given = {_day_number(d): _entries(es) for d, es in c.days.items()}
    out: list[Entry] = []
    for day in wanted:
        n, digest = committed[day]
        if day not in given:
            failures.append(
                f"range cut short: day {day_text(day)} ({n} record(s) of {c.key!r}) is inside the "
                "selection but its bucket is not in the bundle"
            )
            continue
        entries = given[day]
        if len(entries) != n or bucket_digest(kh, entries, day) != digest:
            failures.append(
                f"index proof: the bucket of {day_text(day)} is not the committed one "
                f"({len(entries)} entries given, {n} committed)"
            )
        out += [e for e in entries if inside(e[1])]
    for day in sorted(set(given) - set(wanted)):
        failures.append(f"completeness.days: day {day_text(day)} is not a committed day inside the selection")
    return sorted(out)


def completeness_failures(bundle: Bundle) -> list[str]:
    """Everything a v2 bundle's completeness proof gets wrong (empty: the records are all of
    the selection's, as of the head; the head itself is checked on chain elsewhere)."""
    c = bundle.completeness
    assert c is not None and bundle.anchor.index_root is not None  # Bundle's own check
    failures: list[str] = []
    value = _value(c, hex_bytes(bundle.anchor.index_root), failures)
    if failures:
        return failures
    expected = _expected(bundle, c, value, failures)
    return failures + _match(bundle, c.key, expected)


def _match(bundle: Bundle, key: str, expected: list[Entry]) -> list[str]:
    """The disclosed records against the committed entries: dropped, added, moved, replaced."""
    failures = []
    by_index = {r.index: r for r in bundle.records}
    by_leaf = {e[2]: e for e in expected}
    wanted = {e[0]: e for e in expected}
    for idx, _, leaf in expected:
        r = by_index.get(idx)
        if r is None:
            failures.append(
                f"record dropped: the committed bucket of {key!r} has leaf {idx} ({leaf.hex()}) "
                "inside the selection, the bundle does not disclose it"
            )
        elif hex_bytes(r.leaf_hash) != leaf:
            failures.append(
                f"record replaced: leaf {idx} is {leaf.hex()} in the committed bucket of {key!r}, "
                f"the bundle states {r.leaf_hash} (another version of the record)"
            )
    for r in bundle.records:
        if r.index in wanted:
            continue
        moved = by_leaf.get(hex_bytes(r.leaf_hash))
        rid = r.record.get("id") if r.record is not None else None
        if moved is not None:
            failures.append(
                f"record moved: {rid!r} is at leaf {moved[0]} in the committed bucket, the "
                f"bundle places it at {r.index}"
            )
        else:
            failures.append(
                f"record added from elsewhere: leaf {r.index} ({rid!r}) is not in the committed "
                f"bucket of {key!r} inside the selection"
            )
    return failures


def extends_failures(earlier: Bundle, later: Bundle) -> list[str]:
    """Why `later` does not extend `earlier` (two v2 bundles of one key; both verified on
    their own first): same log, later head not smaller, every entry the earlier one committed
    still there, unchanged, in the same place."""
    a, b = earlier.completeness, later.completeness
    if a is None or b is None:
        return ["both bundles must be v2 bundles (completeness proven) to compare them"]
    failures = []
    if (earlier.anchor.chain_id, earlier.anchor.contract) != (later.anchor.chain_id, later.anchor.contract):
        failures.append("the bundles are anchored on different logs (chain or contract)")
    if a.key != b.key:
        failures.append(f"the bundles are of different keys ({a.key!r}, {b.key!r})")
    if later.anchor.tree_size < earlier.anchor.tree_size:
        failures.append(
            f"the later bundle's head ({later.anchor.tree_size}) is smaller than the earlier's "
            f"({earlier.anchor.tree_size})"
        )
    if failures:
        return failures
    size = earlier.anchor.tree_size
    if a.entries is not None and b.entries is not None:
        return _prefix_failures(a.key, _entries(a.entries), _entries(b.entries), size)
    return _days_extend(a, b, size)


def _prefix_failures(what: str, old: list[Entry], new: list[Entry], size: int) -> list[str]:
    kept = [e for e in new if e[0] < size]
    if kept == old:
        return []
    gone = [e for e in old if e not in kept]
    added = [e for e in kept if e not in old]
    out = [
        f"{what}: leaf {e[0]} ({e[2].hex()}) was there at head {size} and is gone or changed" for e in gone
    ]
    return out + [
        f"{what}: leaf {e[0]} appears below the earlier head {size}, which did not have it" for e in added
    ]


def _days_extend(a: Completeness, b: Completeness, size: int) -> list[str]:
    assert a.directory is not None and b.directory is not None and a.days is not None and b.days is not None
    failures: list[str] = []
    later_dir = {d: (n, g) for d, n, g in b.directory}
    for d, n, g in a.directory:
        if d not in later_dir:
            failures.append(f"{a.key}: day {d} ({n} record(s) at head {size}) vanished from the directory")
        elif d in a.days and d in b.days:
            failures += _prefix_failures(f"{a.key} day {d}", _entries(a.days[d]), _entries(b.days[d]), size)
        elif later_dir[d][0] < n:
            failures.append(
                f"{a.key}: day {d} had {n} record(s) at head {size}, the later head only {later_dir[d][0]}"
            )
        elif later_dir[d] != (n, g) and d in a.days:
            failures.append(
                f"{a.key}: day {d} changed after head {size} and the later bundle does not "
                "carry its bucket: export it with a range covering that day to compare"
            )
    return failures
