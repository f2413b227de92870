"""Replays: rebuild a disputed order's history on a fresh chain and compare.

`replay` takes a case (`ledger.investigate.case`, docs/replay.md), deploys fresh contracts
on a chain whose clock starts before the case, sets the escrow up the same way, and
replays every action at its original block time. Parties keep their roles but get replay
keys derived from their original addresses, and every EIP-712 signature is re-made over
the same message in the new domain by the replay key of whoever signed the original
(recovered from it): a forged or misplaced signature stays exactly as wrong as it was.
Before each step the evidence it cites is checked against the case's anchored head: the
record recomputes to that leaf and its inclusion proof holds, offline and with the replay
chain's own EvidenceLog. Events are mapped back to the original addresses and ids, so the
original and the replayed event logs compare entry by entry; keys, addresses and block
times are all determined by the case, so a replay yields the same event log every time,
on the embedded chain and on anvil.

What-if overrides (`ledger.investigate.overrides`) change one action or record before
replaying: drop a step, move it in time, change a call argument or a record field; the
result names the first step whose outcome diverges and the first whose evidence fails
verification.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger._internal import jsondoc, solc
from ledger.chain.abi import ERROR_DISPLAY, decode_log, jsonable
from ledger.chain.anvil import AnvilProcess
from ledger.chain.keys import labelled_key
from ledger.chain.rpc import Chain, connect, embedded, redacted_url
from ledger.deploy import meta_evidence_uri
from ledger.errors import CaseError, ContractRevert
from ledger.escrow.calls import Call, EscrowCalls
from ledger.escrow.eip712 import Attestation, Offer, order_key, sign_attestation, sign_offer, signed_message
from ledger.escrow.types import DAY, MIN_PRICE, NATIVE, ZERO32, OrderState
from ledger.evidence.bundle import verify_records
from ledger.evidence.bundle_format import BundleAnchor, BundleRecord, hex_bytes
from ledger.investigate.case import (
    Case,
    CaseAction,
    CaseExpect,
    CasePanel,
    CaseSetup,
    Erc20Token,
    abi_value,
    function_abi,
)
from ledger.investigate.overrides import Override, apply_overrides

__all__ = ["ReplayResult", "StepResult", "expectation_problems", "replay"]

_logger = logging.getLogger(__name__)

REPLAY_GAS = 3_000_000
SETUP_LEAD = 3600  # the replay chain starts this long before the first action
_DISPUTE_ARGS = {"disputeId", "disputeID"}


# --------------------------------------------------------------------------- replay


@dataclass
class StepResult:
    n: int
    function: str
    time: int
    original_status: str
    original_error: str | None
    replay_status: str  # confirmed | failed | dropped
    replay_error: str | None
    original_events: list[dict[str, Any]]
    replay_events: list[dict[str, Any]]
    evidence: str | None  # what the step cites, or None
    evidence_ok: bool | None  # None when the step cites nothing
    evidence_detail: str
    overridden: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return (
            self.original_status == self.replay_status
            and self.original_error == self.replay_error
            and self.original_events == self.replay_events
        )


@dataclass
class ReplayResult:
    order_id: str
    chain: str
    steps: list[StepResult]
    original_state: str
    replay_state: str
    record_failures: dict[str, list[str]]
    event_log: list[dict[str, Any]]

    @property
    def matches(self) -> bool:
        return self.original_state == self.replay_state and all(s.matches for s in self.steps)

    @property
    def verified(self) -> bool:
        """The evidence every effective step cited is a verified leaf of the anchored head.

        Steps the escrow refused on the original chain changed nothing; what they cited is
        shown but does not count (an attacker's rejected call may cite anything)."""
        return self.first_verification_failure is None and not self.record_failures

    @property
    def ok(self) -> bool:
        """The replay reproduces the original and every piece of evidence verifies."""
        return self.matches and self.verified

    @property
    def first_divergence(self) -> int | None:
        return next((s.n for s in self.steps if not s.matches), None)

    @property
    def first_verification_failure(self) -> int | None:
        return next((s.n for s in self.steps
                     if s.evidence_ok is False and s.original_status == "confirmed"), None)

    @property
    def event_log_digest(self) -> str:
        text = json.dumps(self.event_log, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id, "chain": self.chain, "ok": self.ok,
            "matches": self.matches, "verified": self.verified,
            "original_state": self.original_state, "replay_state": self.replay_state,
            "first_divergence": self.first_divergence,
            "first_verification_failure": self.first_verification_failure,
            "event_log_digest": self.event_log_digest, "record_failures": self.record_failures,
            "steps": [{
                "n": s.n, "function": s.function, "time": s.time, "matches": s.matches,
                "original": {"status": s.original_status, "error": s.original_error,
                             "events": s.original_events},
                "replay": {"status": s.replay_status, "error": s.replay_error, "events": s.replay_events},
                "evidence": s.evidence, "evidence_ok": s.evidence_ok,
                "evidence_detail": s.evidence_detail, "overridden": s.overridden,
            } for s in self.steps],
            "event_log": self.event_log,
        }  # fmt: skip


def _replay_key(original: str) -> LocalAccount:
    """The replay stand-in for an original party: a key derived from its address."""
    key = keccak(b"evidence-escrow/replay/v1" + bytes.fromhex(original[2:]))
    return cast(LocalAccount, Account.from_key(key))


class _Replayer:
    def __init__(self, case: Case, chain: Chain) -> None:
        self.case = case
        self.chain = chain
        self.deployer = chain.accounts[0]
        self.keys: dict[str, LocalAccount] = {}
        self.contracts: dict[str, str] = {}  # original contract address -> replay address
        self.reverse: dict[str, str] = {}  # replay address (lower) -> original address
        self.dispute_ids: dict[int, int] = {}  # original -> replay
        self.dispute_back: dict[int, int] = {}  # replay -> original
        self.terms_back: dict[int, int] = {}
        self.last_time = chain.timestamp()

    # addresses -------------------------------------------------------------------------
    def key(self, original: str) -> LocalAccount:
        original = to_checksum_address(original)
        if original not in self.keys:
            k = _replay_key(original)
            self.keys[original] = k
            self.reverse[k.address.lower()] = original
        return self.keys[original]

    def addr(self, original: str) -> str:
        original = to_checksum_address(original)
        if int(original, 16) == 0:
            return original
        if original.lower() in {k.lower() for k in self.contracts}:
            return next(v for k, v in self.contracts.items() if k.lower() == original.lower())
        return self.key(original).address

    def back(self, value: Any) -> Any:
        """Replay-side JSON values mapped to the original addresses."""
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            return self.reverse.get(value.lower(), value)
        if isinstance(value, dict):
            return {k: self.back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.back(v) for v in value]
        return value

    # time --------------------------------------------------------------------------------
    def tick(self, at: int | None = None) -> int:
        t = max(self.last_time + 1, at if at is not None else self.last_time + 1)
        self.chain.set_next_timestamp(t)
        self.last_time = t
        return t

    def send(self, call: Call, sender: LocalAccount) -> dict[str, Any]:
        """A set-up transaction, one second after the last; one that reverts is a `CaseError`."""
        self.tick()
        try:
            return self.chain.transact(call.fn, sender, value=call.value, gas=REPLAY_GAS)
        except ContractRevert as exc:
            raise CaseError(f"replay set-up step {call.label} failed: {exc}") from None

    # set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        """The escrow as it stood when the order was funded (docs/replay.md, step 3), set up
        in a fixed order so that addresses and block times are the same on every replay."""
        setup = self.case.setup
        merchant, parties = self._parties()
        for p in parties:
            spends = sum(a.value for a in self.case.actions if a.sender == p)
            self._fund_eth(self.key(p).address, spends)
        self._deploy_log()
        self._deploy_escrow()
        self.token = self._deploy_token(parties)
        for carrier in setup.carriers:
            self.send(self.calls.set_carrier(self.key(carrier).address, True), self.deployer)
        self._fund_deposit_and_reserve(merchant)
        self._ghosts(setup, self.token, merchant)
        _logger.debug("replay set up: escrow %s, arbitrator %s, evidence log %s, token %s",
                      self.escrow.address, self.arbitrator.address, self.log.address, self.token)

    def _parties(self) -> tuple[str, list[str]]:
        """(the merchant, everyone who gets ETH: who acts, both sides of the offer, the panel)."""
        fund = next(a for a in self.case.actions if a.function == "fund")
        offer = fund.args["offer"]
        parties = {a.sender for a in self.case.actions} | {offer["merchant"]}
        if int(offer["buyer"], 16):
            parties.add(offer["buyer"])
        if self.case.setup.panel:
            parties |= set(self.case.setup.panel.members)
        return offer["merchant"], sorted(parties)

    def _deploy_log(self) -> None:
        """The evidence log, with the case's head anchored, so inclusion proofs can be checked
        by the contract itself."""
        self.log = self._deploy("EvidenceLog", self.deployer.address)
        head = self.case.evidence.anchor
        if head.tree_size:
            anchor = self.log.functions.anchor(head.tree_size, hex_bytes(head.root), [])
            self.send(Call(anchor), self.deployer)

    def _deploy_escrow(self) -> None:
        """The panel's arbitrator and the escrow on the case's terms, standing in for the originals."""
        setup, original = self.case.setup, self.case.original
        panel = setup.panel or CasePanel([self.deployer.address], 1, 0)
        self.arbitrator = self._deploy("PanelArbitrator", self.deployer.address,
                                       [self.key(m).address for m in panel.members],
                                       panel.threshold, panel.arbitration_cost)
        if original.arbitrator:
            self._map_contract(original.arbitrator, self.arbitrator.address)
        terms = setup.terms.judged_by(self.arbitrator.address)
        rules = self._deploy("EscrowTermsRules")
        self.escrow = self._deploy("FulfillmentEscrow", rules.address, self.deployer.address,
                                   self.deployer.address,
                                   terms.as_tuple(), setup.deposit_ratio_bps, meta_evidence_uri(terms))
        self._map_contract(original.escrow, self.escrow.address)
        self.calls = EscrowCalls(self.escrow, self.arbitrator)
        self.terms_back[1] = setup.terms_id

    def _deploy_token(self, parties: list[str]) -> str:
        """The token paid in: ETH, or a test ERC-20 standing in for the original, which every
        party holds plenty of and has approved to the escrow."""
        token = self.case.setup.token
        if not isinstance(token, Erc20Token):
            return NATIVE
        tok = self._deploy("TestStablecoin")
        self._map_contract(token.address, tok.address)
        self.send(self.calls.set_token_allowed(tok.address, True), self.deployer)
        for p in parties:
            acct = self.key(p)
            self.send(Call(tok.functions.mint(acct.address, 2**96)), self.deployer)
            self.send(self.calls.approve(tok.address, 2**256 - 1), acct)
        return str(tok.address)

    def _fund_deposit_and_reserve(self, merchant: str) -> None:
        """The merchant's deposit and the token's risk reserve."""
        setup, token = self.case.setup, self.token
        native = token == NATIVE
        if setup.merchant_deposit:
            m = self.key(merchant)
            if native:
                self._fund_eth(m.address, setup.merchant_deposit)
            self.send(self.calls.deposit_for(m.address, token, setup.merchant_deposit), m)
        if setup.reserve:
            if not native:
                tok = self.chain.contract("TestStablecoin", token)
                self.send(Call(tok.functions.mint(self.deployer.address, setup.reserve)), self.deployer)
                self.send(self.calls.approve(token, setup.reserve), self.deployer)
            self.send(self.calls.fund_reserve(token, setup.reserve), self.deployer)

    def _ghosts(self, setup: CaseSetup, token: str, merchant: str) -> None:
        """Recreate the outside state the order met: waybills other orders had claimed, and
        the merchant's exposure on its other open orders (which its deposit had to cover).
        Ghost orders stand in for those other orders; a claimed waybill's ghost carries the
        very order id that claimed it, so a reuse is refused with the same values."""
        claimed = setup.claimed_tracking
        exposure = setup.merchant_exposure
        if not claimed and not exposure:
            return
        native = token == NATIVE
        ghost_m, ghost_b, ghost_c = (labelled_key(f"evidence-escrow/replay/v1 ghost {x}")
                                     for x in ("merchant", "buyer", "carrier"))
        for g in (ghost_m, ghost_b, ghost_c):
            self._fund_eth(g.address, (exposure + 10**18) if native else 0)
        if not native:
            tok = self.chain.contract("TestStablecoin", token)
            for g in (ghost_m, ghost_b):
                self.send(Call(tok.functions.mint(g.address, 2**96)), self.deployer)
                self.send(self.calls.approve(token, 2**256 - 1), g)
        self.send(self.calls.set_carrier(ghost_c.address, True), self.deployer)
        if claimed:
            self.send(self.calls.deposit_for(ghost_m.address, token, 10**18), ghost_m)
        orders: list[tuple[bytes, LocalAccount, int, str | None]] = [
            (hex_bytes(c.order_id), ghost_m, MIN_PRICE, c.tracking) for c in claimed
        ]
        if exposure:
            orders.append((bytes(keccak(text="ghost exposure")), self.key(merchant), exposure, None))
        cid, esc = self.chain.chain_id, self.escrow.address
        for oid, seller, price, waybill in orders:
            later = self.last_time + 30 * DAY
            offer = Offer(oid, seller.address, ghost_b.address, token, price, later, DAY, ZERO32, later)
            self.send(self.calls.fund(offer, sign_offer(seller, offer, cid, esc)), ghost_b)
            if waybill is not None:
                att = Attestation("Shipment", oid, waybill, self.last_time + 1)
                self.send(self.calls.ship(att, sign_attestation(ghost_c, att, cid, esc)), ghost_c)
        self.send(self.calls.set_carrier(ghost_c.address, False), self.deployer)

    def _deploy(self, name: str, *args: Any) -> Contract:
        self.tick()
        return self.chain.deploy(name, *args, sender=self.deployer)

    def _map_contract(self, original: str, replay: str) -> None:
        self.contracts[to_checksum_address(original)] = replay
        self.reverse[replay.lower()] = to_checksum_address(original)

    def _fund_eth(self, to: str, extra: int = 0) -> None:
        """Gas money (10 ETH) plus what the account will pay in."""
        self.tick()
        self.chain.send_eth(to, 10**19 + extra, self.deployer)

    # steps -----------------------------------------------------------------------------
    def call_args(self, action: CaseAction, contract: Contract) -> list[Any]:
        abi = function_abi(contract, action.function)
        args = dict(action.args)
        for name in _DISPUTE_ARGS:
            if name in args and action.contract == "PanelArbitrator":
                args[name] = self.dispute_ids.get(int(args[name]), int(args[name]))
        for sig in action.signatures:
            struct = args[sig.of]
            mapped = {k: self.addr(v) if isinstance(v, str) and len(v) == 42 else v
                      for k, v in struct.items()}
            if sig.signer is None:
                continue  # recovered to nobody originally: keep the bytes as they were
            typed = signed_message(sig.type, mapped).typed_data(self.chain.chain_id, self.escrow.address)
            signed = self.key(sig.signer).sign_message(encode_typed_data(full_message=typed))
            args[sig.arg] = "0x" + bytes(signed.signature).hex()
        return [abi_value(i, args[i["name"]], self.addr) for i in abi["inputs"]]

    def run_step(self, action: CaseAction) -> tuple[str, str | None, list[dict[str, Any]]]:
        """(status, error, events) of one action sent at its original time. It is simulated on
        the pending block first: a call the escrow refuses is reported from that simulation,
        with its decoded error, and not sent."""
        contract = self.arbitrator if action.contract == "PanelArbitrator" else self.escrow
        fn = getattr(contract.functions, action.function)(*self.call_args(action, contract))
        sender = self.key(action.sender)
        self.tick(action.time)
        try:
            fn.call({"from": sender.address, "value": action.value}, block_identifier="pending")
        except Exception as exc:  # noqa: BLE001 - decoded below
            err = self.chain.explain(exc, action.function)
            if isinstance(err, ContractRevert):
                return "failed", _error_text(err.error_name, self.back(jsonable(err.error_args))), []
            raise
        receipt = self.chain.send(fn, sender, value=action.value, gas=REPLAY_GAS)
        if receipt["status"] != 1:
            return "failed", "Unknown(reverted when mined)", []
        return "confirmed", None, self._events(receipt)

    def _events(self, receipt: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for log in receipt["logs"]:
            addr = str(log["address"]).lower()
            contract = (self.escrow if addr == self.escrow.address.lower()
                        else self.arbitrator if addr == self.arbitrator.address.lower() else None)
            if contract is None:
                continue
            decoded = decode_log(contract, log)
            if decoded is None:
                continue
            name, args = decoded
            out.append({"name": name, "args": self.back(jsonable(args))})
        return out

    def normalise_ids(self, original: list[dict[str, Any]],
                      replayed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Learn dispute-id pairs from this step and map replayed ids (and terms ids) back."""
        for o, r in zip(original, replayed, strict=False):
            if o["name"] == r["name"]:
                for k in _DISPUTE_ARGS & o["args"].keys() & r["args"].keys():
                    self.dispute_ids.setdefault(int(o["args"][k]), int(r["args"][k]))
                    self.dispute_back.setdefault(int(r["args"][k]), int(o["args"][k]))
        out = []
        for ev in replayed:
            args = dict(ev["args"])
            for k in _DISPUTE_ARGS & args.keys():
                args[k] = self.dispute_back.get(int(args[k]), int(args[k]))
            if ev["name"] == "OrderFunded" and "termsId" in args:
                args["termsId"] = self.terms_back.get(int(args["termsId"]), args["termsId"])
            if ev["name"] == "Dispute" and "metaEvidenceID" in args:
                args["metaEvidenceID"] = self.terms_back.get(int(args["metaEvidenceID"]),
                                                             args["metaEvidenceID"])
            out.append({"name": ev["name"], "args": args})
        return out


def _error_text(name: str, args: dict[str, Any]) -> str:
    """``Name(arg=value, ...)`` with the arguments in the error's declared order."""
    shown = ERROR_DISPLAY.get(name, dict)(args)
    order = _error_arg_order().get(name, [])
    keys = [k for k in order if k in shown] + sorted(k for k in shown if k not in order)
    return f"{name}(" + ", ".join(f"{k}={shown[k]}" for k in keys) + ")"


@functools.cache
def _error_arg_order() -> dict[str, list[str]]:
    return {item["name"]: [i["name"] for i in item["inputs"]]
            for art in solc.artifacts().values() for item in art.abi if item.get("type") == "error"}


def _check_evidence(
    action: CaseAction, records: dict[str, BundleRecord], verdicts: dict[str, list[str]],
    replayer: _Replayer, head: BundleAnchor,
) -> tuple[str | None, bool | None, str]:
    """Whether the evidence a step cites is a verified leaf of the anchored head."""
    ev = action.evidence
    if ev is None:
        return None, None, "cites no evidence"
    leaf = hex_bytes(ev.leaf)
    item = records.get(leaf.hex())
    label = ev.record_id or ev.leaf[:16]
    if item is None:
        return label, False, f"cited leaf {ev.leaf[:16]}… is not disclosed in the case"
    rid = item.record.get("id")
    problems = verdicts.get(rid, []) if isinstance(rid, str) else []
    if problems:
        return label, False, f"record {rid}: " + "; ".join(problems)
    proof = [hex_bytes(p) for p in item.inclusion_proof]
    on_chain = replayer.chain.call(replayer.log.functions.verifyInclusion(
        item.index, leaf, head.tree_size, hex_bytes(head.root), proof))
    if not on_chain:
        return label, False, f"record {rid}: the EvidenceLog contract rejects its inclusion proof"
    return label, True, f"record {rid} is leaf {item.index} of the anchored head (size {head.tree_size})"


@contextmanager
def _replay_chain(kind: str, genesis: int, rpc: str | None) -> Iterator[tuple[Chain, str]]:
    with ExitStack() as stack:
        if rpc:
            c = connect(rpc)
            if c.timestamp() >= genesis:
                raise CaseError(
                    f"the node at {redacted_url(rpc)} is already at time {c.timestamp()}, past the "
                    f"case's start {genesis}: replay on the embedded chain (default) or a fresh "
                    "anvil (--anvil)"
                )
            yield c, f"rpc {redacted_url(rpc)}"
        elif kind == "anvil":
            node = stack.enter_context(AnvilProcess(timestamp=genesis))
            c = connect(node.url)
            c.poll_interval = 0.01
            yield c, "anvil"
        else:
            yield embedded(genesis_timestamp=genesis), "embedded"


def replay(
    case: Case,
    *,
    chain: str = "embedded",
    rpc: str | None = None,
    overrides: Sequence[Override] = (),
) -> ReplayResult:
    """Replay a case on a fresh chain (see the module docstring)."""
    case = apply_overrides(case, overrides) if overrides else case
    first = min(a.time for a in case.actions)
    verdicts = {v.record_id: v.failures for v in verify_records(case.evidence)[0] if v.record_id is not None}
    records = {hex_bytes(r.leaf_hash).hex(): r for r in case.evidence.records}
    with _replay_chain(chain, first - SETUP_LEAD, rpc) as (c, label):
        r = _Replayer(case, c)
        r.setup()
        steps = [_step(r, a, records, verdicts) for a in case.actions]
        state = OrderState(int(c.call(r.escrow.functions.orderState(order_key(case.order_id))))).name
    log = [{"step": s.n, **e} for s in steps for e in s.replay_events]
    failures = {k: v for k, v in verdicts.items() if v}
    result = ReplayResult(case.order_id, label, steps, case.outcome.state, state, failures, log)
    _logger.info("replayed order %s on %s: %s, %d/%d step(s) match, final state %s (originally %s), "
                 "evidence %s", case.order_id, label, "reproduced" if result.matches else "diverged",
                 sum(s.matches for s in steps), len(steps), state, case.outcome.state,
                 "verified" if result.verified else "NOT verified")
    return result


def _step(r: _Replayer, a: CaseAction, records: dict[str, BundleRecord],
          verdicts: dict[str, list[str]]) -> StepResult:
    """Check the evidence an action cites, then replay it (unless an override dropped it)."""
    cited, ok, detail = _check_evidence(a, records, verdicts, r, r.case.evidence.anchor)
    original_events: list[dict[str, Any]] = jsondoc.to_json(a.events)
    events: list[dict[str, Any]] = []
    if a.dropped:
        ok, detail = None, "step dropped"
        status, error = "dropped", None
    else:
        status, error, events = r.run_step(a)
        events = r.normalise_ids(original_events, events)
    _logger.debug("step %d %s at %d: %s%s; evidence: %s", a.n, a.function, a.time, status,
                  "" if error is None else f" {error}", detail)
    return StepResult(
        n=a.n, function=a.function, time=a.time, original_status=a.status,
        original_error=None if a.error is None else _error_text(a.error.name, a.error.args),
        replay_status=status, replay_error=error, original_events=original_events,
        replay_events=events, evidence=cited, evidence_ok=ok, evidence_detail=detail,
        overridden=a.overridden or [],
    )  # fmt: skip


def expectation_problems(case: Case, result: ReplayResult) -> list[str]:
    """How a replay falls short of the case's ``expect`` block (empty when it meets it).

    ``expect``: ``state`` (final order state), ``failed`` ([function, error name] of every
    step the escrow refuses), ``verified`` (default true) and ``first_verification_failure``
    (the function of the first effective step whose evidence fails, default none). The
    replay must also reproduce the original step by step.
    """
    expect = case.expect or CaseExpect()
    problems = []
    if not result.matches:
        problems.append(f"the replay diverges from the original at step {result.first_divergence}")
    if expect.state is not None and result.replay_state != expect.state:
        problems.append(f"final state {result.replay_state}, expected {expect.state}")
    failed = [[s.function, (s.replay_error or "").split("(")[0]] for s in result.steps
              if s.replay_status == "failed"]
    if expect.failed is not None and failed != expect.failed:
        problems.append(f"refused steps {failed}, expected {expect.failed}")
    verified = True if expect.verified is None else expect.verified
    if result.verified != verified:
        problems.append(f"evidence verified: {result.verified}, expected {verified}")
    first = result.first_verification_failure
    name = None if first is None else result.steps[first].function
    if name != expect.first_verification_failure:
        problems.append(f"first evidence failure at {name}, expected {expect.first_verification_failure}")
    return problems
