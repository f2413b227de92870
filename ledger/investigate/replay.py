"""Cases and replays: rebuild a disputed order's history on a fresh chain and compare.

A *case* (``evidence-escrow/case/v1``, docs/replay.md) is everything an investigator needs
about one order, with no access to the platform: the order's evidence bundle (records,
salts, inclusion proofs, the anchored head), the escrow's set-up when the order was funded
(terms, deposit ratio, the merchant's deposit, the risk reserve, the panel, the carriers
whose attestations it accepted), and every transaction touching the order, successful or
reverted, with its original time, sender, decoded arguments, the EIP-712 signatures it
carried and who signed them, its outcome and its decoded events.

`replay` deploys fresh contracts on a chain whose clock starts before the case, sets the
escrow up the same way, and replays every action at its original block time. Parties keep
their roles but get replay keys derived from their original addresses, and every EIP-712
signature is re-made over the same message in the new domain by the replay key of whoever
signed the original (recovered from it): a forged or misplaced signature stays exactly as
wrong as it was. Before each step the evidence it cites is checked against the case's
anchored head: the record recomputes to that leaf and its inclusion proof holds, offline
and with the replay chain's own EvidenceLog. Events are mapped back to the original
addresses and ids, so the original and the replayed event logs compare entry by entry;
keys, addresses and block times are all determined by the case, so a replay yields the
same event log every time, on the embedded chain and on anvil.

What-if overrides (`Override`) change one action or record before replaying: drop a step,
move it in time, change a call argument or a record field; the result names the first step
whose outcome diverges and the first whose evidence fails verification.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger._internal import jsondoc
from ledger.chain.abi import decode_log, jsonable
from ledger.chain.keys import labelled_key
from ledger.chain.rpc import Chain, connect, embedded
from ledger.deploy import meta_evidence_uri
from ledger.errors import CaseError, ContractRevert
from ledger.escrow.eip712 import (
    Attestation,
    Offer,
    order_key,
    recover_signer,
    sign_attestation,
    sign_offer,
    signed_message,
)
from ledger.escrow.types import NATIVE, ZERO32, OrderState, Terms
from ledger.evidence.bundle import export_bundle, verify_records
from ledger.evidence.bundle_format import Bundle

__all__ = [
    "CASE_FORMAT", "Override", "ReplayResult", "StepResult", "build_case", "expectation_problems",
    "load_case", "replay",
]

CASE_FORMAT = "evidence-escrow/case/v1"
REPLAY_GAS = 3_000_000
SETUP_LEAD = 3600  # the replay chain starts this long before the first action
ZERO = "0x" + "00" * 20

#: function -> (signature argument, EIP-712 type, argument holding the signed struct)
SIGNED_ARGS: dict[str, tuple[str, str, str]] = {
    "fund": ("merchantSignature", "Offer", "offer"),
    "ship": ("carrierSignature", "Shipment", "shipment"),
    "deliver": ("carrierSignature", "Delivery", "delivery"),
    "shipReturn": ("carrierSignature", "ReturnShipment", "shipment"),
    "deliverReturn": ("carrierSignature", "ReturnDelivery", "delivery"),
}
_DISPUTE_ARGS = {"disputeId", "disputeID"}




# --------------------------------------------------------------------------- JSON forms


def _jsonify(abi_item: dict[str, Any], value: Any) -> Any:
    """An ABI value as JSON: addresses checksummed, bytes as 0x-hex, structs as objects."""
    t = abi_item["type"]
    if t.startswith("tuple"):
        comps = abi_item["components"]
        if t.endswith("[]"):
            return [_jsonify({**abi_item, "type": t[:-2]}, v) for v in value]
        if isinstance(value, dict):
            value = [value[c["name"]] for c in comps]
        return {c["name"]: _jsonify(c, v) for c, v in zip(comps, value, strict=True)}
    if t.endswith("[]"):
        return [_jsonify({**abi_item, "type": t[:-2]}, v) for v in value]
    if t == "address":
        return to_checksum_address(value)
    if t.startswith("bytes"):
        return "0x" + bytes(value).hex()
    if t.startswith(("uint", "int")):
        return int(value)
    if t == "bool":
        return bool(value)
    return value


def _pythonify(abi_item: dict[str, Any], value: Any, addr: Any) -> Any:
    """JSON back to an ABI value, with every address passed through `addr` (the mapping)."""
    t = abi_item["type"]
    if t.startswith("tuple"):
        comps = abi_item["components"]
        if t.endswith("[]"):
            return [_pythonify({**abi_item, "type": t[:-2]}, v, addr) for v in value]
        return tuple(_pythonify(c, value[c["name"]], addr) for c in comps)
    if t.endswith("[]"):
        return [_pythonify({**abi_item, "type": t[:-2]}, v, addr) for v in value]
    if t == "address":
        return addr(value)
    if t.startswith("bytes"):
        return bytes.fromhex(value[2:])
    return value


def _fn_abi(contract: Contract, name: str) -> dict[str, Any]:
    # web3 types ABI entries as a union of TypedDicts; they are the artifacts' plain JSON objects.
    for item in cast(Sequence[dict[str, Any]], contract.abi):
        if item.get("type") == "function" and item["name"] == name:
            return item
    raise CaseError(f"{name} is not a function of this contract")


def _recover(kind: str, struct: dict[str, Any], signature: str, chain_id: int, escrow: str) -> str | None:
    """Who signed `struct` (a decoded call argument) as EIP-712 type `kind` for that escrow."""
    typed = signed_message(kind, struct).typed_data(chain_id, escrow)
    try:
        return recover_signer(typed, bytes.fromhex(signature[2:]))
    except Exception:  # noqa: BLE001 - a signature that recovers to nobody stays as it is
        return None


# --------------------------------------------------------------------------- building


def build_case(
    store: Any,
    client: Any,
    order_id: str,
    *,
    log_address: str,
    extra_txs: Sequence[bytes] = (),
    note: str | None = None,
) -> dict[str, Any]:
    """The case of `order_id` from the platform's store and the chain it ran on.

    Includes every escrow action the platform logged for the order and `extra_txs`
    (transactions it did not send, e.g. a fraud attempt someone submitted directly).
    The order's records must be anchored: the case carries their bundle.
    """
    chain: Chain = client.chain
    w3 = chain.w3
    bundle, left_out = export_bundle(store, chain.chain_id, log_address, order_id=order_id)
    if left_out:
        raise CaseError(f"records {left_out} of order {order_id!r} are not anchored yet: run `ledger anchor`")
    rows = [a for a in store.actions(order_id=order_id) if a.status != "sent"]
    hashes = [a.tx_hash for a in rows] + [bytes(h) for h in extra_txs]
    if not hashes:
        raise CaseError(f"order {order_id!r} has no escrow actions")
    by_leaf = {r.leaf_hash: r.record["id"] for r in bundle.records}
    escrow, arbitrator = client.escrow, client.arbitrator
    contracts = {escrow.address.lower(): escrow}
    if arbitrator is not None:
        contracts[arbitrator.address.lower()] = arbitrator
    txs = []
    for h in dict.fromkeys(hashes):  # keep order, drop duplicates
        tx = w3.eth.get_transaction(h)
        receipt = w3.eth.get_transaction_receipt(h)
        txs.append((int(receipt["blockNumber"]), int(receipt["transactionIndex"]), h, tx, receipt))
    txs.sort(key=lambda x: (x[0], x[1]))
    actions: list[dict[str, Any]] = []
    for block, _, h, tx, receipt in txs:
        contract = contracts.get(str(tx["to"]).lower())
        if contract is None:
            raise CaseError(f"transaction 0x{h.hex()} is not a call to the escrow or its arbitrator")
        fn, params = contract.decode_function_input(tx["input"])
        abi = fn.abi if hasattr(fn, "abi") else _fn_abi(contract, fn.fn_name)
        args = {i["name"]: _jsonify(i, params[i["name"]]) for i in abi["inputs"]}
        name = abi["name"]
        action: dict[str, Any] = {
            "n": len(actions),
            "contract": "PanelArbitrator" if contract is arbitrator else "FulfillmentEscrow",
            "function": name,
            "sender": to_checksum_address(tx["from"]),
            "value": int(tx["value"]),
            "time": int(w3.eth.get_block(block)["timestamp"]),
            "block": block,
            "tx_hash": "0x" + bytes(h).hex(),
            "args": args,
            "signatures": [],
            "status": "confirmed" if receipt["status"] == 1 else "failed",
            "error": None,
            "events": [],
            "evidence": None,
        }
        if name in SIGNED_ARGS:
            sig_arg, kind, struct_arg = SIGNED_ARGS[name]
            signer = _recover(kind, args[struct_arg], args[sig_arg], chain.chain_id, escrow.address)
            action["signatures"].append({"arg": sig_arg, "type": kind, "of": struct_arg, "signer": signer})
        cited = args.get("evidence") or (args.get("offer") or {}).get("orderRecord")
        if isinstance(cited, str) and cited.startswith("0x") and int(cited, 16):
            action["evidence"] = {"leaf": cited[2:], "record_id": by_leaf.get(cited[2:])}
        if receipt["status"] == 1:
            action["events"] = [{"name": n, "args": jsonable(a)} for n, a in client.events(receipt)]
        else:
            action["error"] = _original_error(chain, h)
        actions.append(action)
    fund = next((a for a in actions if a["function"] == "fund" and a["status"] == "confirmed"), None)
    if fund is None:
        raise CaseError(f"order {order_id!r} was never funded: nothing to replay")
    setup = _setup(client, fund)
    setup.update(_outside_state(client, order_id, actions))
    final = client.state(order_key(order_id))
    return {
        "format": CASE_FORMAT,
        "order_id": order_id,
        "note": note,
        "original": {
            "chain_id": chain.chain_id, "escrow": escrow.address,
            "arbitrator": None if arbitrator is None else arbitrator.address,
            "evidence_log": to_checksum_address(log_address),
        },
        "setup": setup,
        "evidence": jsondoc.to_json(bundle),
        "actions": actions,
        "outcome": {"state": final.name},
    }  # fmt: skip


def _original_error(chain: Chain, tx_hash: bytes) -> dict[str, Any]:
    """A failed transaction's custom error as JSON (name and values)."""
    err = chain.failure(tx_hash, "call")
    if isinstance(err, ContractRevert):
        return {"name": err.error_name, "args": jsonable(err.error_args)}
    return {"name": "Unknown", "args": {"message": str(err)}}


def _setup(client: Any, fund: dict[str, Any]) -> dict[str, Any]:
    """The escrow as it stood just before the order was funded."""
    chain = client.chain
    before = fund["block"] - 1
    offer = fund["args"]["offer"]
    token = offer["token"]
    merchant = offer["merchant"]
    esc = client.escrow
    deposit, exposure, _ = chain.call(esc.functions.depositOf(token, merchant), block=before)
    totals = chain.call(esc.functions.totals(token), block=before)
    terms_id = int(chain.call(esc.functions.currentTermsId(), block=before))
    terms = Terms.from_tuple(chain.call(esc.functions.terms(terms_id), block=before))
    ratio = int(chain.call(esc.functions.depositRatioBps(), block=before))
    panel: dict[str, Any] | None = None
    if client.arbitrator is not None and client.arbitrator.address.lower() == terms.arbitrator.lower():
        arb = client.arbitrator
        _, members, threshold = chain.call(arb.functions.panel(), block=before)
        cost = int(chain.call(arb.functions.arbitrationCost(b""), block=before))
        panel = {"members": [to_checksum_address(m) for m in members], "threshold": int(threshold),
                 "arbitration_cost": cost}
    if int(token, 16) == 0:
        tok: dict[str, Any] = {"kind": "native"}
    else:
        erc20 = chain.contract("TestStablecoin", token)
        tok = {"kind": "erc20", "address": to_checksum_address(token),
               "decimals": int(chain.call(erc20.functions.decimals()))}
    return {
        "token": tok,
        "terms_id": terms_id,
        "terms": {k: (("0x" + v.hex()) if isinstance(v, bytes) else v) for k, v in terms.__dict__.items()},
        "deposit_ratio_bps": ratio,
        "merchant_deposit": int(deposit),
        "merchant_exposure": int(exposure),
        "reserve": int(totals[2]),
        "panel": panel,
    }


def _outside_state(client: Any, order_id: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    """What the order's steps depended on beyond the order itself, as it stood at each step:
    which attestation signers were registered carriers, and which tracking hashes other
    orders had already claimed (the reused-waybill check)."""
    chain = client.chain
    esc = client.escrow
    own = order_key(order_id)
    carriers: set[str] = set()
    claimed: dict[str, str] = {}
    for a in actions:
        before = a["block"] - 1
        for sig in a["signatures"]:
            if sig["type"] == "Offer" or not sig["signer"]:
                continue
            if chain.call(esc.functions.isCarrier(sig["signer"]), block=before):
                carriers.add(sig["signer"])
            th = a["args"][sig["of"]]["trackingHash"]
            owner = bytes(chain.call(esc.functions.orderOfTracking(th), block=before))
            if int.from_bytes(owner, "big") and owner != own:
                claimed.setdefault(th, "0x" + owner.hex())
    return {
        "carriers": sorted(carriers),
        "claimed_tracking": [{"tracking_hash": th, "order_id": oid} for th, oid in sorted(claimed.items())],
    }


def load_case(text: str | bytes, source: str = "case") -> dict[str, Any]:
    try:
        case = json.loads(text)
    except ValueError as exc:
        raise CaseError(f"{source} is not JSON: {exc}") from None
    if not isinstance(case, dict) or case.get("format") != CASE_FORMAT:
        raise CaseError(f"{source} is not a case file (format must be {CASE_FORMAT!r})")
    for key in ("order_id", "setup", "evidence", "actions", "original", "outcome"):
        if key not in case:
            raise CaseError(f"{source}: missing {key!r}")
    return case


# --------------------------------------------------------------------------- overrides

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


def _find_action(case: dict[str, Any], ref: str) -> int:
    name, _, nth = ref.partition("#")
    n = int(nth) if nth else 1
    hits = [i for i, a in enumerate(case["actions"]) if a["function"] == name]
    if len(hits) < n:
        raise CaseError(f"the case has {len(hits)} call(s) of {name!r}, not #{n}")
    return hits[n - 1]


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare string


_DUR = re.compile(r"^([+-])(\d+)([smhd]?)$")


def apply_overrides(case: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of `case` with the overrides applied (the original outcomes are kept)."""
    out = copy.deepcopy(case)
    for ov in overrides:
        if ov.op == "record":
            rid, _, fld = ov.target.rpartition(".")
            items = [r for r in out["evidence"]["records"] if r["record"].get("id") == rid]
            if not items or not fld:
                raise CaseError(f"override {ov}: no disclosed record {rid!r} (RECORD_ID.FIELD)")
            items[0]["record"][fld] = _json_arg(ov.value or "")
            continue
        ref, _, path = ov.target.partition(".")
        i = _find_action(out, ref)
        action = out["actions"][i]
        if ov.op == "drop":
            action["dropped"] = True
        elif ov.op == "time":
            m = _DUR.match(ov.value or "")
            if m:
                secs = int(m[2]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[3]]
                action["time"] += secs if m[1] == "+" else -secs
            else:
                try:
                    action["time"] = int(ov.value or "")
                except ValueError:
                    raise CaseError(f"override {ov}: time must be +DURATION, -DURATION "
                                    "or unix seconds") from None
        elif ov.op == "arg":
            keys = path.split(".") if path else []
            if not keys:
                raise CaseError(f"override {ov}: name the argument (arg:FUNCTION.NAME=JSON)")
            target = action["args"]
            for k in keys[:-1]:
                target = target[k]
            if keys[-1] not in target:
                raise CaseError(f"override {ov}: {action['function']} has no argument {path!r}")
            target[keys[-1]] = _json_arg(ov.value or "")
        action.setdefault("overridden", []).append(str(ov))
    return out


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
    def __init__(self, case: dict[str, Any], chain: Chain) -> None:
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

    def send(self, fn: Any, sender: LocalAccount, value: int = 0) -> dict[str, Any]:
        self.tick()
        raw, h, _ = self.chain.build_signed(fn, sender, value=value, gas=REPLAY_GAS)
        self.chain.broadcast(raw)
        receipt = self.chain.wait(h)
        if receipt["status"] != 1:
            try:
                fn.call({"from": sender.address, "value": value}, block_identifier=receipt["blockNumber"] - 1)
                why = "out of gas?"
            except Exception as exc:  # noqa: BLE001 - decoded for the message
                why = str(self.chain.explain(exc, fn.fn_name))
            raise CaseError(f"replay set-up step {fn.fn_name} failed: {why}")
        return receipt

    # set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        c, case = self.chain, self.case
        s = case["setup"]
        orig = case["original"]
        # Everyone who acts, and both sides of the offer, get ETH.
        fund = next(a for a in case["actions"] if a["function"] == "fund")
        offer = fund["args"]["offer"]
        merchant = offer["merchant"]
        parties = {a["sender"] for a in case["actions"]} | {merchant}
        if int(offer["buyer"], 16):
            parties.add(offer["buyer"])
        if s.get("panel"):
            parties |= set(s["panel"]["members"])
        for p in sorted(parties):
            spends = sum(a["value"] for a in case["actions"] if a["sender"] == p)
            self._fund_eth(self.key(p).address, spends)
        # The evidence log, with the case's head anchored, so inclusion proofs can be checked
        # by the contract itself.
        self.log = self._deploy("EvidenceLog", self.deployer.address)
        head = case["evidence"]["anchor"]
        size, root = int(head["tree_size"]), bytes.fromhex(head["root"])
        if size:
            self.send(self.log.functions.anchor(size, root, []), self.deployer)
        panel = s.get("panel") or {"members": [self.deployer.address], "threshold": 1, "arbitration_cost": 0}
        self.arbitrator = self._deploy("PanelArbitrator", self.deployer.address,
                                       [self.key(m).address for m in panel["members"]],
                                       panel["threshold"], panel["arbitration_cost"])
        if orig.get("arbitrator"):
            self._map_contract(orig["arbitrator"], self.arbitrator.address)
        t = dict(s["terms"])
        t["arbitrator"] = self.arbitrator.address
        t["arbitrator_extra_data"] = bytes.fromhex(str(t.get("arbitrator_extra_data", "0x"))[2:])
        terms = Terms(**t)
        self.escrow = self._deploy("FulfillmentEscrow", self.deployer.address, self.deployer.address,
                                   terms.as_tuple(), s["deposit_ratio_bps"], meta_evidence_uri(terms))
        self._map_contract(orig["escrow"], self.escrow.address)
        self.terms_back[1] = int(s["terms_id"])
        token = NATIVE
        if s["token"]["kind"] == "erc20":
            tok = self._deploy("TestStablecoin")
            token = tok.address
            self._map_contract(s["token"]["address"], token)
            self.send(self.escrow.functions.setTokenAllowed(token, True), self.deployer)
            for p in sorted(parties):
                acct = self.key(p)
                self.send(tok.functions.mint(acct.address, 2**96), self.deployer)
                self.send(tok.functions.approve(self.escrow.address, 2**256 - 1), acct)
        self.token = token
        native = token == NATIVE
        for carrier in s["carriers"]:
            self.send(self.escrow.functions.setCarrier(self.key(carrier).address, True), self.deployer)
        if s["merchant_deposit"]:
            m = self.key(merchant)
            if native:
                self._fund_eth(m.address, s["merchant_deposit"])
            self.send(self.escrow.functions.depositFor(m.address, token, s["merchant_deposit"]), m,
                      s["merchant_deposit"] if native else 0)
        if s["reserve"]:
            if not native:
                tok_c = c.contract("TestStablecoin", token)
                self.send(tok_c.functions.mint(self.deployer.address, s["reserve"]), self.deployer)
                self.send(tok_c.functions.approve(self.escrow.address, s["reserve"]), self.deployer)
            self.send(self.escrow.functions.fundReserve(token, s["reserve"]), self.deployer,
                      s["reserve"] if native else 0)
        self._ghosts(s, token, merchant)

    def _ghosts(self, s: dict[str, Any], token: str, merchant: str) -> None:
        """Recreate the outside state the order met: waybills other orders had claimed, and
        the merchant's exposure on its other open orders (which its deposit had to cover).
        Ghost orders stand in for those other orders; a claimed waybill's ghost carries the
        very order id that claimed it, so a reuse is refused with the same values."""
        claimed = s.get("claimed_tracking", [])
        exposure = int(s.get("merchant_exposure", 0))
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
                self.send(tok.functions.mint(g.address, 2**96), self.deployer)
                self.send(tok.functions.approve(self.escrow.address, 2**256 - 1), g)
        self.send(self.escrow.functions.setCarrier(ghost_c.address, True), self.deployer)
        if claimed:
            self.send(self.escrow.functions.depositFor(ghost_m.address, token, 10**18), ghost_m,
                      10**18 if native else 0)
        orders: list[tuple[bytes, LocalAccount, int, bytes | None]] = [
            (bytes.fromhex(c["order_id"][2:]), ghost_m, 1, bytes.fromhex(c["tracking_hash"][2:]))
            for c in claimed
        ]
        if exposure:
            orders.append((bytes(keccak(text="ghost exposure")), self.key(merchant), exposure, None))
        cid, esc = self.chain.chain_id, self.escrow.address
        for oid, seller, price, th in orders:
            later = self.last_time + 30 * 86400
            offer = Offer(oid, seller.address, ghost_b.address, token, price, later, 86400, ZERO32, later)
            signature = sign_offer(seller, offer, cid, esc)
            value = price if native else 0
            self.send(self.escrow.functions.fund(offer.as_tuple(), signature), ghost_b, value)
            if th is not None:
                att = Attestation("Shipment", oid, th, self.last_time + 1)
                self.send(self.escrow.functions.ship(att.as_tuple(), sign_attestation(ghost_c, att, cid, esc),
                                                     ZERO32), ghost_c)
        self.send(self.escrow.functions.setCarrier(ghost_c.address, False), self.deployer)

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
    def call_args(self, action: dict[str, Any], contract: Contract) -> list[Any]:
        abi = _fn_abi(contract, action["function"])
        args = dict(action["args"])
        for name in _DISPUTE_ARGS:
            if name in args and action["contract"] == "PanelArbitrator":
                args[name] = self.dispute_ids.get(int(args[name]), int(args[name]))
        for sig in action.get("signatures", []):
            struct = args[sig["of"]]
            mapped = {k: self.addr(v) if isinstance(v, str) and len(v) == 42 else v
                      for k, v in struct.items()}
            if sig["signer"] is None:
                continue  # recovered to nobody originally: keep the bytes as they were
            typed = signed_message(sig["type"], mapped).typed_data(self.chain.chain_id, self.escrow.address)
            signed = self.key(sig["signer"]).sign_message(encode_typed_data(full_message=typed))
            args[sig["arg"]] = "0x" + bytes(signed.signature).hex()
        return [_pythonify(i, args[i["name"]], self.addr) for i in abi["inputs"]]

    def run_step(self, action: dict[str, Any]) -> tuple[str, str | None, list[dict[str, Any]]]:
        contract = self.arbitrator if action["contract"] == "PanelArbitrator" else self.escrow
        fn = getattr(contract.functions, action["function"])(*self.call_args(action, contract))
        sender = self.key(action["sender"])
        self.tick(action["time"])
        try:
            fn.call({"from": sender.address, "value": action["value"]}, block_identifier="pending")
        except Exception as exc:  # noqa: BLE001 - decoded below
            err = self.chain.explain(exc, action["function"])
            if isinstance(err, ContractRevert):
                return "failed", _error_text(err.error_name, self.back(jsonable(err.error_args))), []
            raise
        raw, h, _ = self.chain.build_signed(fn, sender, value=action["value"], gas=REPLAY_GAS)
        self.chain.broadcast(raw)
        receipt = self.chain.wait(h)
        if receipt["status"] != 1:
            return "failed", "Unknown(reverted when mined)", []
        events = self._events(receipt)
        return "confirmed", None, events

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
    from ledger.chain.abi import ERROR_DISPLAY

    shown = ERROR_DISPLAY.get(name, dict)(args)
    order = _error_arg_order().get(name, [])
    keys = [k for k in order if k in shown] + sorted(k for k in shown if k not in order)
    return f"{name}(" + ", ".join(f"{k}={shown[k]}" for k in keys) + ")"


@functools.cache
def _error_arg_order() -> dict[str, list[str]]:
    from ledger._internal import solc

    return {item["name"]: [i["name"] for i in item["inputs"]]
            for art in solc.artifacts().values() for item in art.abi if item.get("type") == "error"}


def _check_evidence(
    action: dict[str, Any], records: dict[str, dict[str, Any]], verdicts: dict[str, list[str]],
    replayer: _Replayer, head: dict[str, Any],
) -> tuple[str | None, bool | None, str]:
    """Whether the evidence a step cites is a verified leaf of the anchored head."""
    ev = action.get("evidence")
    if not ev:
        return None, None, "cites no evidence"
    leaf = ev["leaf"]
    item = records.get(leaf)
    label = ev.get("record_id") or leaf[:16]
    if item is None:
        return label, False, f"cited leaf {leaf[:16]}… is not disclosed in the case"
    rid = item["record"].get("id")
    problems = verdicts.get(rid, [])
    if problems:
        return label, False, f"record {rid}: " + "; ".join(problems)
    proof = [bytes.fromhex(p) for p in item["inclusion_proof"]]
    on_chain = replayer.chain.call(replayer.log.functions.verifyInclusion(
        int(item["index"]), bytes.fromhex(leaf), int(head["tree_size"]), bytes.fromhex(head["root"]), proof))
    if not on_chain:
        return label, False, f"record {rid}: the EvidenceLog contract rejects its inclusion proof"
    return label, True, (f"record {rid} is leaf {item['index']} of the anchored head "
                         f"(size {head['tree_size']})")


@contextmanager
def _replay_chain(kind: str, genesis: int, rpc: str | None) -> Iterator[tuple[Chain, str]]:
    with ExitStack() as stack:
        if rpc:
            c = connect(rpc)
            if c.timestamp() >= genesis:
                raise CaseError(
                    f"the node at {rpc} is already at time {c.timestamp()}, past the case's start "
                    f"{genesis}: replay on the embedded chain (default) or a fresh anvil (--chain anvil)"
                )
            yield c, f"rpc {rpc}"
        elif kind == "anvil":
            from ledger.chain.anvil import AnvilProcess

            node = stack.enter_context(AnvilProcess(timestamp=genesis))
            c = connect(node.url)
            c.poll_interval = 0.01
            yield c, "anvil"
        else:
            yield embedded(genesis_timestamp=genesis), "embedded"


def replay(
    case: dict[str, Any],
    *,
    chain: str = "embedded",
    rpc: str | None = None,
    overrides: Sequence[Override] = (),
) -> ReplayResult:
    """Replay a case on a fresh chain (see the module docstring)."""
    case = apply_overrides(case, overrides) if overrides else case
    first = min(a["time"] for a in case["actions"])
    verdicts_list, _, _ = verify_records(msgspec.convert(case["evidence"], Bundle, strict=True))
    verdicts = {v.record_id: v.failures for v in verdicts_list if v.record_id is not None}
    records = {r["leaf_hash"]: r for r in case["evidence"]["records"]}
    head = case["evidence"]["anchor"]
    with _replay_chain(chain, first - SETUP_LEAD, rpc) as (c, label):
        r = _Replayer(case, c)
        r.setup()
        steps: list[StepResult] = []
        log: list[dict[str, Any]] = []
        events: list[dict[str, Any]]
        oid = order_key(case["order_id"])
        for a in case["actions"]:
            cited, ok, detail = _check_evidence(a, records, verdicts, r, head)
            if a.get("dropped"):
                ok, detail = None, "step dropped"
            original_error = (None if a["error"] is None
                              else _error_text(a["error"]["name"], a["error"]["args"]))
            if a.get("dropped"):
                status, error, events = "dropped", None, []
            else:
                status, error, events = r.run_step(a)
                events = r.normalise_ids(a["events"], events)
            steps.append(StepResult(
                n=a["n"], function=a["function"], time=a["time"], original_status=a["status"],
                original_error=original_error, replay_status=status, replay_error=error,
                original_events=a["events"], replay_events=events, evidence=cited, evidence_ok=ok,
                evidence_detail=detail, overridden=a.get("overridden", []),
            ))  # fmt: skip
            log.extend({"step": a["n"], **e} for e in events)
        state = OrderState(int(c.call(r.escrow.functions.orderState(oid)))).name
    failures = {k: v for k, v in verdicts.items() if v}
    return ReplayResult(case["order_id"], label, steps, case["outcome"]["state"], state, failures, log)


def expectation_problems(case: dict[str, Any], result: ReplayResult) -> list[str]:
    """How a replay falls short of the case's ``expect`` block (empty when it meets it).

    ``expect``: ``state`` (final order state), ``failed`` ([function, error name] of every
    step the escrow refuses), ``verified`` (default true) and ``first_verification_failure``
    (the function of the first effective step whose evidence fails, default none). The
    replay must also reproduce the original step by step.
    """
    expect = case.get("expect") or {}
    problems = []
    if not result.matches:
        problems.append(f"the replay diverges from the original at step {result.first_divergence}")
    if "state" in expect and result.replay_state != expect["state"]:
        problems.append(f"final state {result.replay_state}, expected {expect['state']}")
    failed = [[s.function, (s.replay_error or "").split("(")[0]] for s in result.steps
              if s.replay_status == "failed"]
    if "failed" in expect and failed != expect["failed"]:
        problems.append(f"refused steps {failed}, expected {expect['failed']}")
    if result.verified != expect.get("verified", True):
        problems.append(f"evidence verified: {result.verified}, expected {expect.get('verified', True)}")
    first = result.first_verification_failure
    name = None if first is None else result.steps[first].function
    if name != expect.get("first_verification_failure"):
        problems.append(f"first evidence failure at {name}, "
                        f"expected {expect.get('first_verification_failure')}")
    return problems
