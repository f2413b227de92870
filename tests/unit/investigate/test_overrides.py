"""What-if overrides: applied to a copy, and refused where a replay could not run them as shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.errors import CaseError
from ledger.investigate.case import Case, dumps_case, load_case
from ledger.investigate.overrides import Override, apply_overrides

CASES = sorted((Path(__file__).resolve().parents[2] / "cases").glob("*.json"))


def _case(fragment: str) -> tuple[Case, str]:
    path = next(p for p in CASES if fragment in p.name)
    text = path.read_text()
    return load_case(text, path.name), text


def test_overrides_change_a_copy_that_writes_and_reads_back() -> None:
    case, text = _case("timeout-release")
    oid = case.order_id
    changed = apply_overrides(case, [
        Override.parse("drop:deliver"), Override.parse("time:release=-2d"),
        Override.parse('arg:ship.shipment.tracking="SF:0000000000"'),
        Override.parse(f'record:{oid}:ship.tracking_number="SF0000000000"'),
    ])  # fmt: skip
    assert dumps_case(case) == text  # the original is untouched
    by_function = {a.function: a for a in changed.actions}
    original = {a.function: a for a in case.actions}
    assert by_function["deliver"].dropped and by_function["deliver"].overridden == ["drop:deliver"]
    assert by_function["release"].time == original["release"].time - 2 * 86400
    assert by_function["ship"].args["shipment"]["tracking"] == "SF:0000000000"
    assert next(r for r in changed.evidence.records
                if r.record["id"] == f"{oid}:ship").record["tracking_number"] == "SF0000000000"
    assert load_case(dumps_case(changed)) == changed
    written = json.loads(dumps_case(changed))
    assert next(a for a in written["actions"] if a["function"] == "deliver")["dropped"] is True


@pytest.mark.parametrize(("value", "moved"), [("+3d", 3 * 86400), ("-2h", -7200), ("+90", 90), ("+5m", 300)])
def test_time_overrides(value: str, moved: int) -> None:
    case, _ = _case("timeout-release")
    release = next(a for a in case.actions if a.function == "release")
    changed = apply_overrides(case, [Override.parse(f"time:release={value}")])
    assert next(a for a in changed.actions if a.function == "release").time == release.time + moved
    absolute = apply_overrides(case, [Override.parse("time:release=1800000000")])
    assert next(a for a in absolute.actions if a.function == "release").time == 1_800_000_000


@pytest.mark.parametrize(("text", "message"), [
    ("drop:fund#3", "not #3"),
    ("drop:noSuchFunction", r"has 0 call\(s\) of 'noSuchFunction'"),
    ("time:release=soon", "time must be"),
    ("arg:release=1", "name the argument"),
    ("arg:release.nothing=1", "has no argument 'nothing'"),
    ("record:nobody:order.total=1", "no disclosed record"),
])  # fmt: skip
def test_bad_overrides_are_case_errors(text: str, message: str) -> None:
    case, _ = _case("timeout-release")
    with pytest.raises(CaseError, match=message):
        apply_overrides(case, [Override.parse(text)])


@pytest.mark.parametrize(("text", "message"), [
    ("time:deliver=-2d", r"override time:deliver=-2d: step 2 \(deliver\) would be at "
                         r"\S+, not after step 1 \(ship\) at \S+, which it follows"),
    ("time:ship=+3d", r"override time:ship=\+3d: step 1 \(ship\) would be at \S+, not before "
                      r"step 2 \(deliver\) at \S+, which follows it"),
    ("time:release=100", r"unix time 100 is out of range"),
    ("time:fund#x=+1", r"#N must be a call number"),
    ('arg:deliver.delivery.evidence="0xzz"',
     r"'\"0xzz\"' is not a valid bytes32 for deliver's argument 'delivery.evidence'"),
    ('arg:deliver.delivery.evidence="0x00"', r"is not a valid bytes32"),
    ("arg:release.evidence=12", r"is not a valid bytes32 for release's argument 'evidence'"),
    ('arg:deliver.delivery.deliveredAt="soon"', r"is not a valid uint64"),
    ("arg:deliver.delivery.deliveredAt=-1", r"is not a valid uint64"),
    ("arg:deliver.nothing.at=1", r"deliver has no struct argument 'nothing'"),
])  # fmt: skip
def test_overrides_a_replay_could_not_run_as_shown_are_refused(text: str, message: str) -> None:
    case, _ = _case("timeout-release")
    with pytest.raises(CaseError, match=message):
        apply_overrides(case, [Override.parse(text)])


def test_a_moved_step_may_keep_its_order_or_move_with_its_neighbours() -> None:
    case, _ = _case("timeout-release")
    t = {a.function: a.time for a in case.actions}
    # Within its neighbours, or past a dropped one, or together with the step it passes.
    for overrides in (["time:deliver=-1h"], ["drop:deliver", "time:release=-4d"],
                      ["time:deliver=+5d", "time:release=+5d"]):
        changed = apply_overrides(case, [Override.parse(o) for o in overrides])
        assert [a.time for a in changed.actions if not a.dropped] == sorted(
            a.time for a in changed.actions if not a.dropped)
    with pytest.raises(CaseError, match=r"step 3 \(release\) would be at"):
        apply_overrides(case, [Override.parse(f"time:release={t['deliver']}")])
