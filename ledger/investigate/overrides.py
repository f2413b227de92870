"""What-if overrides: change a copy of a case before it is replayed (docs/replay.md).

An override drops a step, moves it in time, changes a call argument or a disclosed record.
Each is checked where it is applied, so that a replay only ever runs what it shows: an
argument must still fit its ABI type, and a step may move in time only between the steps
around it, because a replay keeps the case's order of steps, one block after another.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from ledger._internal import solc
from ledger._internal.rfc3339 import rfc3339
from ledger.errors import CaseError
from ledger.investigate.case import Case, CaseAction, abi_value, function_abi

__all__ = ["Override", "apply_overrides"]

_logger = logging.getLogger(__name__)

_OVERRIDE = re.compile(
    r"^(?P<op>drop|time|arg|record):(?P<target>[^=]+?)(?:=(?P<value>.*))?$", re.S
)


@dataclass(frozen=True)
class Override:
    """One what-if change to a case, parsed from text.

    ``drop:FUNCTION[#N]``            remove the N-th (1-based, default 1) call of FUNCTION
    ``time:FUNCTION[#N]=+3d|-2h|T``  move it by a duration, or to unix time T
    ``arg:FUNCTION[#N].NAME[.FIELD]=JSON``  change a call argument (or a field of a struct one)
    ``record:RECORD_ID.FIELD=JSON``  change a field of a disclosed evidence record
    """

    op: str
    target: str
    value: str | None

    @classmethod
    def parse(cls, text: str) -> Override:
        m = _OVERRIDE.match(text.strip())
        if not m or (m["op"] != "drop" and m["value"] is None):
            raise CaseError(
                f"not an override: {text!r} (drop:FUNCTION[#N], time:FUNCTION[#N]=+3d, "
                "arg:FUNCTION[#N].NAME=JSON, record:RECORD_ID.FIELD=JSON)"
            )
        return cls(m["op"], m["target"], m["value"])

    def __str__(self) -> str:
        return f"{self.op}:{self.target}" + ("" if self.value is None else f"={self.value}")


def _find_action(case: Case, ref: str) -> CaseAction:
    name, _, nth = ref.partition("#")
    if nth and not (nth.isascii() and nth.isdigit() and int(nth) >= 1):
        raise CaseError(f"{ref!r}: #N must be a call number from 1")
    n = int(nth) if nth else 1
    hits = [a for a in case.actions if a.function == name]
    if len(hits) < n:
        raise CaseError(f"the case has {len(hits)} call(s) of {name!r}, not #{n}")
    return hits[n - 1]


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare string


_DUR = re.compile(r"^([+-])(\d+)([smhd]?)$")
#: times a step may be moved to: from a day after 1970 (a replay's chain starts an hour
#: before its first step) to the end of year 9999
_EARLIEST, _LATEST = 86400, 253402300799


def apply_overrides(case: Case, overrides: Sequence[Override]) -> Case:
    """A copy of `case` with the overrides applied (the original outcomes are kept)."""
    out = copy.deepcopy(case)
    moved: dict[int, Override] = {}
    for ov in overrides:
        if ov.op == "record":
            _override_record(out, ov)
            continue
        ref, _, path = ov.target.partition(".")
        action = _find_action(out, ref)
        if ov.op == "drop":
            action.dropped = True
        elif ov.op == "time":
            action.time = _moved(action.time, ov)
            moved[action.n] = ov
        elif ov.op == "arg":
            _override_arg(action, path, ov)
        action.overridden = [*(action.overridden or []), str(ov)]
        _logger.debug("override %s applied to step %d", ov, action.n)
    _check_order(out, moved)
    return out


def _override_record(case: Case, ov: Override) -> None:
    rid, _, fld = ov.target.rpartition(".")
    items = [r.record for r in case.evidence.records if r.record is not None and r.record.get("id") == rid]
    if not items or not fld:
        raise CaseError(f"override {ov}: no disclosed record {rid!r} (RECORD_ID.FIELD)")
    items[0][fld] = _json_arg(ov.value or "")


def _moved(time: int, ov: Override) -> int:
    m = _DUR.match(ov.value or "")
    if m:
        secs = int(m[2]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[3]]
        new = time + secs if m[1] == "+" else time - secs
    else:
        try:
            new = int(ov.value or "")
        except ValueError:
            raise CaseError(f"override {ov}: time must be +DURATION, -DURATION or unix seconds") from None
    if not _EARLIEST <= new <= _LATEST:
        raise CaseError(f"override {ov}: unix time {new} is out of range ({_EARLIEST} to {_LATEST})")
    return new


def _check_order(case: Case, moved: dict[int, Override]) -> None:
    """Refuse a moved step that would not run at its new time: a replay sends the steps in
    the case's order, each in a block after the previous one, so a step moved to or before
    the step it follows would run later than shown, and so would the step after a step moved
    to or past it. (Steps that shared a block originally run a second apart, as always.)"""
    prev: CaseAction | None = None
    prev_run = 0
    for a in (x for x in case.actions if not x.dropped):
        if prev is not None and a.time <= prev_run and (a.n in moved or prev.n in moved):
            if a.n in moved:
                raise CaseError(
                    f"override {moved[a.n]}: step {a.n} ({a.function}) would be at {rfc3339(a.time)}, "
                    f"not after step {prev.n} ({prev.function}) at {rfc3339(prev_run)}, which it "
                    f"follows; a replay keeps the steps in order: move or drop step {prev.n} too")
            raise CaseError(
                f"override {moved[prev.n]}: step {prev.n} ({prev.function}) would be at "
                f"{rfc3339(prev_run)}, not before step {a.n} ({a.function}) at {rfc3339(a.time)}, "
                f"which follows it; a replay keeps the steps in order: move or drop step {a.n} too")
        prev, prev_run = a, a.time if prev is None else max(prev_run + 1, a.time)


def _override_arg(action: CaseAction, path: str, ov: Override) -> None:
    keys = path.split(".") if path else []
    if not keys:
        raise CaseError(f"override {ov}: name the argument (arg:FUNCTION.NAME=JSON)")
    target: Any = action.args
    for k in keys[:-1]:
        target = target.get(k)
        if not isinstance(target, dict):
            raise CaseError(f"override {ov}: {action.function} has no struct argument {k!r}")
    if keys[-1] not in target:
        raise CaseError(f"override {ov}: {action.function} has no argument {path!r}")
    target[keys[-1]] = _json_arg(ov.value or "")
    _check_encodable(action, keys, ov)


def _check_encodable(action: CaseAction, keys: list[str], ov: Override) -> None:
    """The changed argument must still fit its ABI type, as the replay will encode it."""
    contract = Web3().eth.contract(abi=solc.artifacts()[action.contract].abi)
    inputs = function_abi(contract, action.function)["inputs"]
    try:
        args = [abi_value(i, action.args[i["name"]], to_checksum_address) for i in inputs]
        getattr(contract.functions, action.function)(*args)
    except Exception:  # noqa: BLE001 - any refusal of the value is reported as such
        item = next(i for i in inputs if i["name"] == keys[0])
        for k in keys[1:]:
            item = next(c for c in item["components"] if c["name"] == k)
        raise CaseError(f"override {ov}: {ov.value!r} is not a valid {item['type']} for "
                        f"{action.function}'s argument {'.'.join(keys)!r}") from None
