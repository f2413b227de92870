"""The case library (tests/cases, made by scripts/make_cases.py): every disputed order
replays to its expected outcome, the same way on the embedded chain and on anvil; what-if
overrides show where a history would diverge; `ledger replay` and `ledger trace` work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from ledger.chain import rpc
from ledger.errors import CaseError, ContractRevert
from ledger.escrow.eip712 import escrow_order_id
from ledger.investigate.case import Case, load_case
from ledger.investigate.overrides import Override
from ledger.investigate.replay import expectation_problems, replay
from ledger.investigate.trace import trace_transaction

CASES = sorted((Path(__file__).resolve().parents[1] / "cases").glob("*.json"))


def _load(path: Path) -> Case:
    return load_case(path.read_text(), path.name)


def test_the_library_covers_the_required_cases() -> None:
    names = {p.stem.split("-", 1)[1] for p in CASES}
    assert len(CASES) >= 10
    assert {
        "non-delivery-after-ship-by", "empty-parcel-reused-tracking", "late-shipment",
        "false-non-delivery-claim", "partial-return", "merchant-silent-in-dispute",
        "forged-carrier-signature", "tampered-evidence-record", "double-pledge",
        "offer-signature-replayed", "timeout-release-no-dispute",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_replays_to_its_expected_outcome_on_both_chains(path: Path) -> None:
    case = _load(path)
    embedded = replay(case)
    assert expectation_problems(case, embedded) == [], embedded.to_json()
    anvil = replay(case, chain="anvil")
    assert expectation_problems(case, anvil) == []
    # Deterministic: the same event log, entry by entry, on both chains.
    assert anvil.event_log == embedded.event_log
    assert anvil.event_log_digest == embedded.event_log_digest
    assert [s.replay_error for s in anvil.steps] == [s.replay_error for s in embedded.steps]


def test_the_same_case_replays_identically_twice() -> None:
    case = _load(next(p for p in CASES if "fraud-ruling" in p.name))
    first, second = replay(case), replay(case)
    assert first.event_log_digest == second.event_log_digest and first.ok
    names = [e["name"] for e in first.event_log]
    assert "DepositSlashed" in names and "DisputeResolved" in names


def test_refused_attempts_are_refused_for_the_same_reason() -> None:
    case = _load(next(p for p in CASES if "empty-parcel" in p.name))
    result = replay(case)
    refused = [s for s in result.steps if s.replay_status == "failed"]
    assert len(refused) == 1 and refused[0].replay_error == refused[0].original_error
    # The error names the order that first used the waybill: the same id as on the original chain.
    first_owner = case.setup.claimed_tracking[0].order_id
    assert f"firstOrderId={first_owner}" in (refused[0].replay_error or "")


def test_what_if_without_the_delivery_attestation() -> None:
    case = _load(next(p for p in CASES if "timeout-release" in p.name))
    result = replay(case, overrides=[Override.parse("drop:deliver")])
    assert not result.ok and result.replay_state == "SHIPPED" and result.original_state == "RELEASED"
    assert result.steps[result.first_divergence].function == "deliver"
    release = next(s for s in result.steps if s.function == "release")
    assert release.replay_status == "failed" and "EscrowUnexpectedState" in (release.replay_error or "")
    assert "current=SHIPPED" in (release.replay_error or "")


def test_what_if_released_early_and_a_changed_record() -> None:
    case = _load(next(p for p in CASES if "timeout-release" in p.name))
    early = replay(case, overrides=[Override.parse("time:release=-2d")])
    release = next(s for s in early.steps if s.function == "release")
    assert release.replay_status == "failed" and "EscrowTooEarly" in (release.replay_error or "")
    oid = case.order_id
    changed = replay(case, overrides=[Override.parse(f'record:{oid}:ship.tracking_number="SF0000000000"')])
    # The chain history is unchanged, but the shipment step's evidence no longer verifies.
    assert changed.matches and not changed.verified
    assert changed.steps[changed.first_verification_failure].function == "ship"
    detail = changed.steps[changed.first_verification_failure].evidence_detail
    assert "tampered content" in detail


def test_what_if_a_different_return_amount() -> None:
    case = _load(next(p for p in CASES if "partial-return" in p.name))
    result = replay(case, overrides=[Override.parse("arg:requestReturn.amount=0")])
    step = next(s for s in result.steps if s.function == "requestReturn")
    assert step.replay_status == "failed" and "EscrowInvalidReturnAmount" in (step.replay_error or "")
    assert result.first_divergence == step.n


def test_tampered_case_names_the_failing_step() -> None:
    case = _load(next(p for p in CASES if "tampered" in p.name))
    result = replay(case)
    assert result.matches and not result.ok
    step = result.steps[result.first_verification_failure]
    assert step.function == "deliver" and "tampered content" in step.evidence_detail
    assert any("tampered content" in f for f in result.record_failures[f"{case.order_id}:dlv"])


def test_bad_overrides_and_cases_are_clear_errors() -> None:
    with pytest.raises(CaseError, match="not an override"):
        Override.parse("remove the delivery")
    case = _load(CASES[0])
    with pytest.raises(CaseError, match="not #3"):
        replay(case, overrides=[Override.parse("drop:fund#3")])
    with pytest.raises(CaseError, match="not a case file"):
        load_case(json.dumps({"format": "something else"}))


def test_a_set_up_step_that_reverts_is_a_case_error_with_its_reason() -> None:
    case = _load(next(p for p in CASES if "double-pledge" in p.name))
    setup = msgspec.structs.replace(case.setup, merchant_deposit=2**97)  # more than the merchant holds
    with pytest.raises(CaseError, match=r"set-up step depositFor failed: .*ERC20InsufficientBalance"):
        replay(msgspec.structs.replace(case, setup=setup))


def _ledger(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_replay_exit_codes_and_json() -> None:
    good = next(p for p in CASES if "double-pledge" in p.name)
    res = _ledger("replay", str(good))
    assert res.returncode == 0, res.stderr
    assert "REPRODUCED" in res.stdout and "EscrowAlreadyPledged" in res.stdout
    bad = next(p for p in CASES if "tampered" in p.name)
    res = _ledger("replay", str(bad), "--json")
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["matches"] and not out["verified"] and out["first_verification_failure"] is not None
    res = _ledger("replay", str(good), "--override", "drop:pledge")
    assert res.returncode == 1 and "first divergence" in res.stdout


@pytest.fixture
def anvil_escrow(anvil_node):  # type: ignore[no-untyped-def]
    """An escrow on the session's anvil (tracing needs a node with debug_traceTransaction)."""
    from ledger.dev.sandbox import make_escrow_env

    c = rpc.connect(anvil_node.url)
    c.poll_interval = 0.01
    snap = c.snapshot()
    try:
        yield make_escrow_env(c)
    finally:
        c.revert_to(snap)


def test_trace_decodes_calls_and_custom_errors(anvil_escrow) -> None:  # type: ignore[no-untyped-def]
    e = anvil_escrow
    # A transaction that reverts deep inside: a deposit of a fee-on-transfer token.
    fee = e.chain.deploy("FeeOnTransferToken", sender=e.admin)
    e.client.set_token_allowed(fee.address, True, e.admin)
    e.chain.transact(fee.functions.mint(e.merchant.address, 10**9), e.admin)
    e.chain.transact(fee.functions.approve(e.client.address, 10**9), e.merchant)
    fn = e.client.escrow.functions.depositFor(e.merchant.address, fee.address, 1000)
    raw, h, _ = e.chain.build_signed(fn, e.merchant, gas=500_000)
    e.chain.broadcast(raw)
    assert e.chain.wait(h)["status"] == 0
    frame = trace_transaction(e.chain, "0x" + h.hex())
    assert frame["contract"] == "FulfillmentEscrow" and frame["function"] == "depositFor"
    assert frame["args"]["amount"] == 1000
    assert frame["error"]["name"] == "EscrowFeeOnTransfer"
    assert {c["function"] for c in frame["calls"]} >= {"balanceOf", "transferFrom"}
    with pytest.raises(ContractRevert):
        e.client.release(escrow_order_id("missing", e.merchant.address), e.admin)


def test_trace_needs_a_tracing_node() -> None:
    c = rpc.embedded()
    receipt = c.send_eth(c.accounts[1].address, 1)
    with pytest.raises(Exception, match="cannot trace|not support|debug_traceTransaction"):
        trace_transaction(c, "0x" + bytes(receipt["transactionHash"]).hex())
