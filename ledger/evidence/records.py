"""Parsing evidence records: JSONL files and lines, and records given as Python mappings.

Validation is strict and reports every problem of every line at once (`ValidationError`
with one `RecordProblem` per problem): no unknown fields, no nulls, no floats, no booleans
where integers belong, integers in 0..2**53-1, identifiers from a small ASCII alphabet,
RFC 3339 UTC timestamps, money as integer minor units of a known ISO 4217 currency.
docs/records.md is the specification; the rules are in `ledger.evidence.validate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, overload

import orjson

from ledger._internal import canonical
from ledger._internal.perf import paused_gc
from ledger.errors import RecordProblem, ValidationError
from ledger.evidence.checks import DupDict, decode_json, type_name
from ledger.evidence.model import MAX_LINE_BYTES, Record, record_from_validated
from ledger.evidence.validate import check_record, fast_valid, record_id_of

__all__ = ["PackedRecords", "parse_jsonl", "parse_line", "parse_record", "read_jsonl"]

_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_OrjsonDecodeError = orjson.JSONDecodeError

# --- parsing -------------------------------------------------------------------------

_id_hint = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"').search


def _guess_id(line: bytes) -> str | None:
    """The record id of a line that could not be decoded, if one is recognisable."""
    m = _id_hint(line)
    return m.group(1).decode("ascii") if m is not None else None


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def _too_long(source: str, line_no: int | None, head: bytes, size: int) -> RecordProblem:
    return RecordProblem(source, line_no, _guess_id(head[:4096]), None,
                         f"line is {size} bytes; the limit is {MAX_LINE_BYTES} bytes per record")


class _Overlong:
    """A line longer than the limit, read from a stream: its start and its length only."""

    __slots__ = ("head", "size")

    def __init__(self, head: bytes, size: int) -> None:
        self.head = head
        self.size = size


def _parse_line(line: bytes, source: str, line_no: int | None) -> tuple[Record | None, list[RecordProblem]]:
    # Fast path: orjson decodes, the fast validator accepts, and re-encoding gives back
    # exactly as many bytes as the line had. orjson keeps the last of duplicate keys, so
    # the length check is what rules duplicates out: for a record the validator accepts
    # (no floats, no control characters but TAB/LF/CR, which orjson writes as two-character
    # escapes), orjson's compact re-encoding of every member is never longer than its
    # source text, so a dropped duplicate member always makes the re-encoding shorter.
    # Anything else (a non-compact line, an escape written longer than needed, any
    # problem at all) takes the slow path below, which is exact and names every problem.
    if len(line) <= MAX_LINE_BYTES:
        try:
            obj = _orjson_loads(line)
        except _OrjsonDecodeError:
            pass
        else:
            if obj.__class__ is dict and fast_valid(obj) and len(_orjson_dumps(obj)) == len(line):
                return record_from_validated(obj), []
    if len(line) > MAX_LINE_BYTES:
        return None, [_too_long(source, line_no, line, len(line))]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [
            RecordProblem(
                source, line_no, _guess_id(line), None,
                f"not valid UTF-8: {e.reason} (byte 0x{line[e.start]:02x}) "
                f"at byte offset {e.start} of the line",
            )
        ]  # fmt: skip
    if text.startswith("\ufeff"):
        return None, [RecordProblem(source, line_no, _guess_id(line), None,
                                    "a UTF-8 byte order mark is not allowed")]
    try:
        obj = decode_json(text)
    except ValueError as e:  # JSONDecodeError, or an integer with too many digits
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        where = f" at character {e.pos}" if isinstance(e, json.JSONDecodeError) else ""
        return None, [RecordProblem(source, line_no, _guess_id(line), None, f"invalid JSON: {msg}{where}")]
    except RecursionError:
        return None, [RecordProblem(source, line_no, _guess_id(line), None,
                                    "invalid JSON: nested too deeply")]
    if obj.__class__ is not dict and obj.__class__ is not DupDict:
        return None, [
            RecordProblem(source, line_no, None, None, f"expected a JSON object, got {type_name(obj)}")
        ]
    if fast_valid(obj):
        return record_from_validated(obj), []
    found = check_record(obj)
    if found:
        rid = record_id_of(obj)
        return None, [RecordProblem(source, line_no, rid, f, reason) for f, reason in found]
    return record_from_validated(obj), []


def parse_line(line: bytes, *, source: str, line_no: int) -> Record:
    """Validate one JSONL line (with or without its line ending).

    Raises `ValidationError` listing every problem of the line.
    """
    if not isinstance(line, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_line takes bytes, not {type(line).__name__}")
    rec, problems = _parse_line(_strip_eol(bytes(line)), source, line_no)
    if problems:
        raise ValidationError(problems)
    assert rec is not None
    return rec


def parse_jsonl(data: bytes | Iterable[bytes], *, source: str) -> list[Record]:
    """Validate a whole JSONL file; every problem of every line is reported in one error.

    Blank lines are skipped. A record id repeated with identical content is kept once;
    repeated with different content it is a problem on the later line. Records are
    returned in file order. Raises `ValidationError` if anything is wrong (nothing is
    returned then: a file is accepted or rejected as a whole).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        lines: Iterable[bytes] = bytes(data).split(b"\n")
    else:
        lines = data
    with paused_gc():
        return list(_parse_lines(lines, source))


def read_jsonl(
    stream: BinaryIO, *, source: str, progress: Callable[[int], None] | None = None
) -> PackedRecords:
    """`parse_jsonl` for a file or stdin, read line by line: memory holds the validated
    records, packed, never the file, and a line over the limit is measured, not held.
    `progress` is told how many bytes were read (every MiB or so, and at the end)."""
    with paused_gc():
        return _parse_lines(_stream_lines(stream, progress), source)


class PackedRecords(Sequence[Record]):
    """Validated records kept as compact JSON (keys sorted), rebuilt as they are read.

    A Record's dicts take about 1.7 KB per flash-sale record, its packed form about 400
    bytes: a million-line file validated before anything is stored needs ~0.4 GB, not
    ~1.7 GB. Equal records pack to equal bytes, which is how repeats are recognised.
    """

    __slots__ = ("_packed",)

    def __init__(self) -> None:
        self._packed: list[bytes] = []

    @staticmethod
    def pack(rec: Record) -> bytes:
        obj = rec.public if rec.personal is None else {**rec.public, "personal": rec.personal}
        return memoryview(_orjson_dumps(obj, option=orjson.OPT_SORT_KEYS)).tobytes()

    def append(self, packed: bytes) -> None:
        self._packed.append(packed)

    def __len__(self) -> int:
        return len(self._packed)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...
    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [record_from_validated(_orjson_loads(b)) for b in self._packed[i]]
        return record_from_validated(_orjson_loads(self._packed[i]))


_READ = MAX_LINE_BYTES + 3  # a line at the limit, its CR LF, and one byte to see it is over


def _stream_lines(stream: BinaryIO, progress: Callable[[int], None] | None) -> Iterator[bytes | _Overlong]:
    unreported = 0
    while line := stream.readline(_READ):
        unreported += len(line)
        if len(line) == _READ and not line.endswith(b"\n"):
            size, end = len(line), line[-2:]
            while more := stream.readline(1 << 20):
                size, end = size + len(more), (end + more)[-2:]
                if more.endswith(b"\n"):
                    break
            unreported += size - len(line)
            yield _Overlong(line[:4096], size - (2 if end == b"\r\n" else end.endswith(b"\n")))
        else:
            yield line
        if progress is not None and unreported >= 1 << 20:
            progress(unreported)
            unreported = 0
    if progress is not None and unreported:
        progress(unreported)


def _parse_lines(lines: Iterable[bytes | _Overlong], source: str) -> PackedRecords:
    records = PackedRecords()
    problems: list[RecordProblem] = []
    first_seen: dict[str, tuple[bytes, int]] = {}  # id -> (packed record, line)
    for line_no, raw in enumerate(lines, 1):
        if isinstance(raw, _Overlong):
            problems.append(_too_long(source, line_no, raw.head, raw.size))
            continue
        if not isinstance(raw, (bytes, bytearray)):
            raise TypeError(f"parse_jsonl takes bytes lines, not {type(raw).__name__}")
        line = _strip_eol(bytes(raw))
        if not line or line.isspace():
            continue
        rec, found = _parse_line(line, source, line_no)
        if found:
            problems.extend(found)
            continue
        assert rec is not None
        packed = records.pack(rec)
        prev = first_seen.get(rec.id)
        if prev is None:
            first_seen[rec.id] = (packed, line_no)
            records.append(packed)
        elif prev[0] != packed:
            problems.append(
                RecordProblem(
                    source, line_no, rec.id, "id",
                    f"duplicate record id with different content (first at line {prev[1]})",
                )
            )  # fmt: skip
    if problems:
        raise ValidationError(problems)
    return records


def parse_record(obj: Mapping[str, Any], *, source: str = "<api>", line_no: int | None = None,
                 erasure: bool = False) -> Record:
    """Validate a record given as a Python mapping (the same rules as a JSONL line; an ``erasure``
    record only with `erasure`, for `ledger erase`).

    The value is copied, so later changes to `obj` do not affect the Record. Its
    canonical form must fit in the 64 KiB record limit.
    """
    if not isinstance(obj, Mapping):
        raise ValidationError([RecordProblem(source, line_no, None, None,
                                             f"expected an object, got {type_name(obj)}")])
    copy = _copy(obj)
    found = check_record(copy, erasure=erasure)
    if found:
        rid = record_id_of(copy)
        raise ValidationError([RecordProblem(source, line_no, rid, f, reason) for f, reason in found])
    size = len(canonical.dumps(copy))
    if size > MAX_LINE_BYTES:
        raise ValidationError([
            RecordProblem(
                source, line_no, copy["id"], None,
                f"record is {size} bytes in canonical form; the limit is {MAX_LINE_BYTES} bytes",
            )
        ])  # fmt: skip
    return record_from_validated(copy)


def _copy(v: Any) -> Any:
    """A structural copy; mappings become plain dicts (keys kept as given)."""
    if isinstance(v, Mapping):
        return {k: _copy(x) for k, x in v.items()}
    if v.__class__ is list:
        return [_copy(x) for x in v]
    return v
