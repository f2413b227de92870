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

import dataclasses
import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
from ledger.escrow.eip712 import (
    Attestation,
    Offer,
    escrow_order_id,
    sign_attestation,
    sign_offer,
    signed_message,
)
from ledger.escrow.types import BPS, DAY, MIN_PRICE, NATIVE, ZERO32, OrderState, Terms, panel_extra_data
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
from ledger.investigate.replay_model import ReplayResult, StepResult

__all__ = ["ReplayResult", "StepResult", "expectation_problems", "replay"]

_logger = logging.getLogger(__name__)

REPLAY_GAS = 3_000_000
SETUP_LEAD = 3600  # the replay chain starts this long before the first action
_DISPUTE_ARGS = {"disputeId", "disputeID"}


# --------------------------------------------------------------------------- replay


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
        self.terms_back: dict[int, int] = {}  # replay terms id -> original
        self.terms_fwd: dict[int, int] = {}  # original terms id -> replay
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
        """Replay-side JSON values mapped to the original addresses, and escrow order ids in a
        replay party's namespace back to the original party's."""
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            return self.reverse.get(value.lower(), value)
        if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
            original = self.reverse.get("0x" + value[2:42].lower())
            return value if original is None else "0x" + original[2:].lower() + value[42:]
        if isinstance(value, dict):
            return {k: self.back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.back(v) for v in value]
        return value

    def fwd(self, value: Any) -> Any:
        """An original JSON value with escrow order ids moved into the namespace of the replay
        key standing in for their merchant (ids lie in the merchant's namespace; the escrow
        refuses any other)."""
        if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
            prefix = to_checksum_address("0x" + value[2:42])
            k = self.keys.get(prefix)
            return value if k is None else "0x" + k.address[2:].lower() + value[42:]
        if isinstance(value, dict):
            return {k: self.fwd(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fwd(v) for v in value]
        return value

    def order_id(self, original: str | bytes) -> bytes:
        """The replay's escrow order id for an original one (see `fwd`)."""
        text = original if isinstance(original, str) else "0x" + original.hex()
        return hex_bytes(self.fwd(text))

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
        if setup.claimed_tracking or setup.merchant_locked:  # ghosts done: the case's terms
            self._set_terms(setup.terms.judged_by(self.arbitrator.address, panel_extra_data(1)))
            replay_id = int(self.chain.call(self.escrow.functions.currentTermsId()))
            self.terms_back = {replay_id: setup.terms_id}
            self.terms_fwd = {setup.terms_id: replay_id}
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
        terms = setup.terms.judged_by(self.arbitrator.address, panel_extra_data(1))
        rules = self._deploy("EscrowTermsRules")
        # Ghost orders (`_ghosts`) are funded under terms of their own first, locking no deposit
        # (or exactly what the merchant's other orders locked); then the case's terms follow.
        ghosts = bool(setup.claimed_tracking or setup.merchant_locked)
        first = dataclasses.replace(terms, deposit_ratio_bps=0) if ghosts else terms
        self.escrow = self._deploy("FulfillmentEscrow", rules.address, self.deployer.address,
                                   self.deployer.address, first.as_tuple(), meta_evidence_uri(first))
        self._map_contract(original.escrow, self.escrow.address)
        self.calls = EscrowCalls(self.escrow, self.arbitrator)
        self.terms_back[1] = setup.terms_id
        self.terms_fwd[setup.terms_id] = 1

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
        the part of the merchant's deposit its other open orders locked. Ghost orders stand in
        for those other orders; a claimed waybill's ghost carries the very order id that claimed
        it (in the replay namespace of that order's merchant, mapped back in what is reported),
        so a reuse is refused with the same values."""
        claimed = setup.claimed_tracking
        locked = setup.merchant_locked
        if not claimed and not locked:
            return
        native = token == NATIVE
        ghost_b, ghost_c = (labelled_key(f"evidence-escrow/replay/v1 ghost {x}")
                            for x in ("buyer", "carrier"))
        for who in (ghost_b.address, ghost_c.address):
            self._fund_eth(who, (_ghost_price(locked) + len(claimed) * MIN_PRICE) if native else 0)
        if not native:
            tok = self.chain.contract("TestStablecoin", token)
            self.send(Call(tok.functions.mint(ghost_b.address, 2**96)), self.deployer)
            self.send(self.calls.approve(token, 2**256 - 1), ghost_b)
        self.send(self.calls.set_carrier(ghost_c.address, True), self.deployer)
        # Under the set-up terms (deposit ratio 0) the claimed waybills' ghosts lock nothing.
        for c in claimed:
            seller = self.key("0x" + c.order_id[2:42])
            self._ghost_order(self.order_id(c.order_id), seller, ghost_b, MIN_PRICE)
            att = Attestation("Shipment", self.order_id(c.order_id), c.tracking, self.last_time + 1)
            sig = sign_attestation(ghost_c, att, self.chain.chain_id, self.escrow.address)
            self.send(self.calls.ship(att, sig), ghost_c)
        if locked:  # one order under terms whose ratio makes it lock exactly `locked`
            terms = setup.terms.judged_by(self.arbitrator.address, panel_extra_data(1))
            self._set_terms(dataclasses.replace(terms, deposit_ratio_bps=_ghost_ratio(locked)))
            seller = self.key(merchant)
            ghost_id = escrow_order_id("evidence-escrow/replay ghost lock", seller.address)
            self._ghost_order(ghost_id, seller, ghost_b, _ghost_price(locked))
        self.send(self.calls.set_carrier(ghost_c.address, False), self.deployer)

    def _ghost_order(self, oid: bytes, seller: LocalAccount, buyer: LocalAccount, price: int) -> None:
        later = self.last_time + 30 * DAY
        terms_id = int(self.chain.call(self.escrow.functions.currentTermsId()))
        offer = Offer(oid, seller.address, buyer.address, self.token, price, later, DAY, ZERO32, later,
                      terms_id)
        sig = sign_offer(seller, offer, self.chain.chain_id, self.escrow.address)
        self.send(self.calls.fund(offer, sig), buyer)

    def _set_terms(self, terms: Terms) -> None:
        self.send(self.calls.set_terms(terms, meta_evidence_uri(terms)), self.deployer)

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
        args = self.fwd(dict(action.args))  # order ids into the replay merchants' namespaces
        offer = args.get("offer")
        if action.function == "fund" and isinstance(offer, dict) and "termsId" in offer:
            offer["termsId"] = self.terms_fwd.get(int(offer["termsId"]), int(offer["termsId"]))
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
            if "evidenceGroupID" in args:  # uint256(escrow order id)
                group = self.back("0x" + int(args["evidenceGroupID"]).to_bytes(32, "big").hex())
                args["evidenceGroupID"] = int(group, 16)
            if ev["name"] == "OrderFunded" and "termsId" in args:
                args["termsId"] = self.terms_back.get(int(args["termsId"]), args["termsId"])
            if ev["name"] == "Dispute" and "metaEvidenceID" in args:
                args["metaEvidenceID"] = self.terms_back.get(int(args["metaEvidenceID"]),
                                                             args["metaEvidenceID"])
            out.append({"name": ev["name"], "args": args})
        return out


def _ghost_price(locked: int) -> int:
    """The price of the ghost order that locks `locked` at `_ghost_ratio(locked)`."""
    return max(locked, MIN_PRICE)


def _ghost_ratio(locked: int) -> int:
    """A deposit ratio at which one order of `_ghost_price(locked)` locks exactly `locked`:
    100 % of a price of `locked`, or `locked` bps of the minimum price (MIN_PRICE is 10,000,
    one BPS)."""
    return BPS if locked >= MIN_PRICE else locked


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
    if item.record is None:
        when = item.erased.at if item.erased is not None else "?"
        return label, False, f"cited leaf {ev.leaf[:16]}… was erased on {when}: its content is gone"
    rid = item.record.get("id")
    problems = verdicts.get(rid, []) if isinstance(rid, str) else []
    if problems:
        return label, False, f"record {rid}: " + "; ".join(problems)
    if item.inclusion_proof is None:
        return label, False, f"record {rid}: the case gives no inclusion path for it"
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
        fund = next(a for a in case.actions if a.function == "fund")
        own = r.order_id(str(fund.args["offer"]["orderId"]))
        state = OrderState(int(c.call(r.escrow.functions.orderState(own)))).name
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
