"""Case files: everything an investigator needs about one disputed order, with no access to
the platform (``evidence-escrow/case/v2``, docs/replay.md).

A case holds the order's evidence bundle (records, salts, inclusion proofs, the anchored
head), the escrow's set-up when the order was funded (terms, deposit ratio, the merchant's
deposit, the risk reserve, the panel, the carriers whose attestations it accepted), and
every transaction touching the order, successful or reverted, with its original time,
sender, decoded arguments, the EIP-712 signatures it carried and who signed them, its
outcome and its decoded events. `build_case` assembles one from the platform's store and
the chain; `Case` is its typed model, parsed strictly in one place (`load_case`) and
written in one place (`dumps_case`); what-if overrides (`ledger.investigate.overrides`)
change a copy before it is replayed (`ledger.investigate.replay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, cast

import msgspec
from eth_typing import Hash32
from eth_utils import keccak, to_checksum_address
from msgspec import Meta
from web3.contract import Contract

from ledger._internal import jsondoc
from ledger._internal.jsondoc import DocumentStruct
from ledger.chain.abi import jsonable
from ledger.chain.rpc import Chain
from ledger.errors import CaseError, ContractRevert
from ledger.escrow.eip712 import recover_signer, signed_message
from ledger.escrow.platform import NON_ESCROW_ACTIONS
from ledger.escrow.types import Terms
from ledger.evidence.anchor_check import recheck_anchors
from ledger.evidence.bundle import export_bundle
from ledger.evidence.bundle_format import Bundle, Hex32, TxHash, hex_bytes

__all__ = [
    "CASE_FORMAT", "ActionError", "Case", "CaseAction", "CaseEvent", "CaseExpect", "CaseOriginal",
    "CaseOutcome", "CasePanel", "CaseSetup", "CaseSignature", "CaseTerms", "CitedEvidence", "ClaimedTracking",
    "Erc20Token", "NativeToken", "abi_value", "build_case", "dumps_case", "function_abi", "load_case",
]

CASE_FORMAT: Final = "evidence-escrow/case/v2"

_logger = logging.getLogger(__name__)

#: function -> (signature argument, EIP-712 type, argument holding the signed struct)
SIGNED_ARGS: dict[str, tuple[str, str, str]] = {
    "fund": ("merchantSignature", "Offer", "offer"),
    "ship": ("carrierSignature", "Shipment", "shipment"),
    "deliver": ("carrierSignature", "Delivery", "delivery"),
    "shipReturn": ("carrierSignature", "ReturnShipment", "shipment"),
    "deliverReturn": ("carrierSignature", "ReturnDelivery", "delivery"),
}

Address = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{40}$")]
Bytes32 = TxHash  # a bytes32 value (escrow order id, tracking hash) in the same 0x-hex form
HexBytes = Annotated[str, Meta(pattern=r"^0x([0-9a-fA-F]{2})*$")]


# --------------------------------------------------------------------------- the document


class CaseOriginal(DocumentStruct):
    """Where the order ran."""

    chain_id: int
    escrow: Address
    arbitrator: Address | None
    evidence_log: Address


class NativeToken(DocumentStruct, tag_field="kind", tag="native"):
    """The order was paid in ETH."""


class Erc20Token(DocumentStruct, tag_field="kind", tag="erc20"):
    """The order was paid in an ERC-20 token."""

    address: Address
    decimals: int


class CaseTerms(DocumentStruct):
    """A terms version (`ledger.escrow.types.Terms`): windows in seconds, bytes as 0x-hex."""

    fee_bps: int
    reserve_bps: int
    compensation_bps: int
    delivery_window: int
    return_ship_window: int
    return_delivery_window: int
    return_inspection_window: int
    response_window: int
    arbitration_window: int
    deposit_ratio_bps: int
    arbitrator: Address
    arbitrator_extra_data: HexBytes

    @classmethod
    def of(cls, terms: Terms) -> CaseTerms:
        fields: dict[str, Any] = {k: ("0x" + v.hex()) if isinstance(v, bytes) else v
                                  for k, v in vars(terms).items()}
        return cls(**fields)

    def judged_by(self, arbitrator: str, extra_data: bytes) -> Terms:
        """These terms with another arbitrator (the replay's own) and its `extraData`."""
        fields = msgspec.structs.asdict(self)
        fields.update(arbitrator=arbitrator, arbitrator_extra_data=extra_data)
        return Terms(**fields)


class CasePanel(DocumentStruct):
    """The panel epoch the order's terms name: who decides its disputes, and at what cost."""

    members: list[Address]
    threshold: int
    arbitration_cost: int


class ClaimedTracking(DocumentStruct):
    """A waybill another order had already claimed (its canonical spelling and hash), and that
    order's escrow id."""

    tracking: str
    tracking_hash: Bytes32
    order_id: Bytes32


class CaseSetup(DocumentStruct):
    """The escrow just before the order was funded, and what the order met from outside it."""

    token: NativeToken | Erc20Token
    terms_id: int
    terms: CaseTerms
    merchant_deposit: int
    merchant_locked: int  # of the deposit, what the merchant's other open orders locked
    reserve: int
    panel: CasePanel | None
    carriers: list[Address]
    claimed_tracking: list[ClaimedTracking]


class CaseSignature(DocumentStruct):
    """An EIP-712 signature a call carried: `arg` holds it, over the struct in argument `of`."""

    arg: str
    type: str
    of: str
    signer: Address | None  # whom it recovers to in the original domain; None: nobody


class ActionError(DocumentStruct):
    """A failed transaction's custom error, decoded."""

    name: str
    args: dict[str, Any]


class CaseEvent(DocumentStruct):
    name: str
    args: dict[str, Any]


class CitedEvidence(DocumentStruct):
    """The leaf a step cites, and which disclosed record has it (None: none does)."""

    leaf: Hex32
    record_id: str | None


class CaseAction(DocumentStruct):
    """One transaction on the order. `args` are the decoded call arguments as JSON (structs
    as objects, bytes as 0x-hex); `dropped` and `overridden` are set only by overrides."""

    n: int
    contract: Literal["FulfillmentEscrow", "PanelArbitrator"]
    function: str
    sender: Address
    value: int
    time: int
    block: int
    tx_hash: TxHash
    args: dict[str, Any]
    signatures: list[CaseSignature]
    status: Literal["confirmed", "failed"]
    error: ActionError | None
    events: list[CaseEvent]
    evidence: CitedEvidence | None
    dropped: bool | None = None
    overridden: list[str] | None = None


class CaseOutcome(DocumentStruct):
    state: str


class CaseExpect(DocumentStruct):
    """The outcome a library case must replay to (`replay.expectation_problems`)."""

    state: str | None = None
    failed: list[Annotated[list[str], Meta(min_length=2, max_length=2)]] | None = None
    verified: bool | None = None  # absent: true
    first_verification_failure: str | None = None


class Case(DocumentStruct):
    format: Literal["evidence-escrow/case/v2"]  # CASE_FORMAT
    order_id: str
    note: str | None
    original: CaseOriginal
    setup: CaseSetup
    evidence: Bundle
    actions: list[CaseAction]
    outcome: CaseOutcome
    name: str | None = None  # the library's name for the case
    expect: CaseExpect | None = None


def load_case(text: str | bytes, source: str = "case") -> Case:
    """Parse a case file strictly (as jsondoc.load does), or raise `CaseError` naming the field."""
    return jsondoc.load(text, Case, source=source, what="a case file", fmt=CASE_FORMAT, error=CaseError)


def dumps_case(case: Case) -> str:
    """The case as written to a file: indented by one, keys sorted, a final newline."""
    return jsondoc.dumps(case, indent=1)


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


def abi_value(abi_item: dict[str, Any], value: Any, addr: Callable[[str], str]) -> Any:
    """A JSON value (as `_jsonify` writes it) back to an ABI value, with every address passed
    through `addr`."""
    t = abi_item["type"]
    if t.startswith("tuple"):
        comps = abi_item["components"]
        if t.endswith("[]"):
            return [abi_value({**abi_item, "type": t[:-2]}, v, addr) for v in value]
        return tuple(abi_value(c, value[c["name"]], addr) for c in comps)
    if t.endswith("[]"):
        return [abi_value({**abi_item, "type": t[:-2]}, v, addr) for v in value]
    if t == "address":
        return addr(value)
    if t.startswith("bytes"):
        return bytes.fromhex(value[2:])
    return value


def function_abi(contract: Contract | type[Contract], name: str) -> dict[str, Any]:
    """The ABI entry of function `name` of `contract`."""
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
) -> Case:
    """The case of `order_id` from the platform's store and the chain it ran on.

    Includes every escrow action the platform logged for the order and `extra_txs`
    (transactions it did not send, e.g. a fraud attempt someone submitted directly).
    The order's records must be anchored: the case carries their bundle.
    """
    chain: Chain = client.chain
    if not store.records_for_order(order_id):
        raise CaseError(f"order {order_id!r} has no record in the log: nothing to build a case from")
    erased = store.erasure_of(order_id)
    if erased is not None:
        raise CaseError(f"order {order_id!r} was erased on {erased.erased_at} (erasure record "
                        f"{erased.erasure_id!r}): its evidence is gone, there is no case to replay")
    for c in recheck_anchors(store, chain, log_address).changes:  # the bundle cites an anchor on chain now
        _logger.warning("%s", c.text())
    bundle, left_out = export_bundle(store, chain.chain_id, log_address, order_id=order_id,
                                     completeness=False)  # a case: v1, with paths
    if left_out:
        raise CaseError(f"records {left_out} of order {order_id!r} are not anchored yet: run `ledger anchor`")
    rows = [a for a in store.actions(order_id=order_id)
            if a.status != "sent" and a.action not in NON_ESCROW_ACTIONS]
    hashes = [a.tx_hash for a in rows] + [bytes(h) for h in extra_txs]
    if not hashes:
        raise CaseError(f"order {order_id!r} has no escrow actions")
    by_leaf = {r.leaf_hash: r.record["id"] for r in bundle.records if r.record is not None}
    actions = [_action(client, n, mined, by_leaf) for n, mined in enumerate(_mined(chain, hashes))]
    fund = next((a for a in actions if a.function == "fund" and a.status == "confirmed"), None)
    if fund is None:
        raise CaseError(f"order {order_id!r} was never funded: nothing to replay")
    own = hex_bytes(fund.args["offer"]["orderId"])
    carriers, claimed = _outside_state(client, own, actions)
    arbitrator = client.arbitrator
    case = Case(
        format=CASE_FORMAT, order_id=order_id, note=note,
        original=CaseOriginal(chain_id=chain.chain_id, escrow=client.escrow.address,
                              arbitrator=None if arbitrator is None else arbitrator.address,
                              evidence_log=to_checksum_address(log_address)),
        setup=_setup(client, fund, carriers, claimed), evidence=bundle, actions=actions,
        outcome=CaseOutcome(client.state(own).name),
    )  # fmt: skip
    _logger.info("built the case of order %s: %d transaction(s), %d evidence record(s), final state %s",
                 order_id, len(actions), len(bundle.records), case.outcome.state)
    return case


@dataclass(frozen=True)
class _Mined:
    block: int
    tx_hash: bytes
    tx: Any
    receipt: Any


def _mined(chain: Chain, hashes: Sequence[bytes]) -> list[_Mined]:
    """The transactions, each once, in chain order."""
    found = []
    for h in dict.fromkeys(hashes):  # keep order, drop duplicates
        if chain.receipt(h) is None:
            raise CaseError(f"transaction 0x{h.hex()} is not mined on chain {chain.chain_id}")
        receipt = chain.w3.eth.get_transaction_receipt(Hash32(h))
        position = (int(receipt["blockNumber"]), int(receipt["transactionIndex"]))
        found.append((position, _Mined(position[0], h, chain.w3.eth.get_transaction(Hash32(h)), receipt)))
    return [m for _, m in sorted(found, key=lambda x: x[0])]


def _action(client: Any, n: int, mined: _Mined, by_leaf: dict[str, str]) -> CaseAction:
    """Step `n` of the case: one transaction, decoded."""
    chain: Chain = client.chain
    escrow, arbitrator = client.escrow, client.arbitrator
    contracts = {escrow.address.lower(): escrow}
    if arbitrator is not None:
        contracts[arbitrator.address.lower()] = arbitrator
    contract = contracts.get(str(mined.tx["to"]).lower())
    if contract is None:
        raise CaseError(f"transaction 0x{mined.tx_hash.hex()} is not a call to the escrow or its arbitrator")
    fn, params = contract.decode_function_input(mined.tx["input"])
    abi = fn.abi if hasattr(fn, "abi") else function_abi(contract, fn.fn_name)
    args = {i["name"]: _jsonify(i, params[i["name"]]) for i in abi["inputs"]}
    ok = mined.receipt["status"] == 1
    return CaseAction(
        n=n, contract="PanelArbitrator" if contract is arbitrator else "FulfillmentEscrow",
        function=abi["name"], sender=to_checksum_address(mined.tx["from"]), value=int(mined.tx["value"]),
        time=int(chain.w3.eth.get_block(mined.block)["timestamp"]), block=mined.block,
        tx_hash="0x" + mined.tx_hash.hex(), args=args,
        signatures=_signatures(abi["name"], args, chain.chain_id, escrow.address),
        status="confirmed" if ok else "failed", error=None if ok else _original_error(chain, mined.tx_hash),
        events=[CaseEvent(name, jsonable(a)) for name, a in client.events(mined.receipt)] if ok else [],
        evidence=_cited(args, by_leaf),
    )  # fmt: skip


def _signatures(function: str, args: dict[str, Any], chain_id: int, escrow: str) -> list[CaseSignature]:
    """The EIP-712 signature a call carries, and whom it recovers to in the original domain."""
    if function not in SIGNED_ARGS:
        return []
    sig_arg, kind, struct_arg = SIGNED_ARGS[function]
    signer = _recover(kind, args[struct_arg], args[sig_arg], chain_id, escrow)
    return [CaseSignature(arg=sig_arg, type=kind, of=struct_arg, signer=signer)]


def _cited(args: dict[str, Any], by_leaf: dict[str, str]) -> CitedEvidence | None:
    """The leaf a call cites: its `evidence` argument, the `evidence` a carrier signed into its
    attestation, or its offer's `orderRecord`."""
    attested = args.get("shipment") or args.get("delivery") or {}
    cited = args.get("evidence") or attested.get("evidence") or (args.get("offer") or {}).get("orderRecord")
    if isinstance(cited, str) and cited.startswith("0x") and int(cited, 16):
        return CitedEvidence(leaf=cited[2:], record_id=by_leaf.get(cited[2:]))
    return None


def _original_error(chain: Chain, tx_hash: bytes) -> ActionError:
    """A failed transaction's custom error (name and values)."""
    err = chain.failure(tx_hash, "call")
    if isinstance(err, ContractRevert):
        return ActionError(err.error_name, jsonable(err.error_args))
    return ActionError("Unknown", {"message": str(err)})


def _setup(client: Any, fund: CaseAction, carriers: list[str], claimed: list[ClaimedTracking]) -> CaseSetup:
    """The escrow as it stood just before the order was funded."""
    chain = client.chain
    before = fund.block - 1
    offer = fund.args["offer"]
    token = offer["token"]
    esc = client.escrow
    deposit, locked = chain.call(esc.functions.depositOf(token, offer["merchant"]), block=before)
    totals = chain.call(esc.functions.totals(token), block=before)
    terms_id = int(chain.call(esc.functions.currentTermsId(), block=before))
    terms = Terms.from_tuple(chain.call(esc.functions.terms(terms_id), block=before))
    panel: CasePanel | None = None
    if client.arbitrator is not None and client.arbitrator.address.lower() == terms.arbitrator.lower():
        arb = client.arbitrator
        extra = terms.arbitrator_extra_data
        epoch = (int.from_bytes(extra, "big") if extra
                 else int(chain.call(arb.functions.panel(), block=before)[0]))
        members, threshold, cost = chain.call(arb.functions.panelAt(epoch), block=before)
        panel = CasePanel([to_checksum_address(m) for m in members], int(threshold), int(cost))
    tok: NativeToken | Erc20Token = NativeToken()
    if int(token, 16):
        erc20 = chain.contract("TestStablecoin", token)
        tok = Erc20Token(to_checksum_address(token), int(chain.call(erc20.functions.decimals())))
    return CaseSetup(
        token=tok, terms_id=terms_id, terms=CaseTerms.of(terms),
        merchant_deposit=int(deposit), merchant_locked=int(locked), reserve=int(totals[2]),
        panel=panel, carriers=carriers, claimed_tracking=claimed,
    )  # fmt: skip


def _outside_state(
    client: Any, own: bytes, actions: list[CaseAction]
) -> tuple[list[str], list[ClaimedTracking]]:
    """What the order's steps depended on beyond the order itself, as it stood at each step:
    which attestation signers were registered carriers, and which tracking hashes other
    orders had already claimed (the reused-waybill check)."""
    chain = client.chain
    esc = client.escrow
    carriers: set[str] = set()
    claimed: dict[str, tuple[str, str]] = {}  # tracking hash -> (waybill, claiming order)
    for a in actions:
        before = a.block - 1
        for sig in a.signatures:
            if sig.type == "Offer" or not sig.signer:
                continue
            if chain.call(esc.functions.isCarrier(sig.signer), block=before):
                carriers.add(sig.signer)
            waybill = str(a.args[sig.of]["tracking"])
            th = "0x" + keccak(text=waybill).hex()
            owner = bytes(chain.call(esc.functions.orderOfTracking(th), block=before))
            if int.from_bytes(owner, "big") and owner != own:
                claimed.setdefault(th, (waybill, "0x" + owner.hex()))
    return sorted(carriers), [ClaimedTracking(w, th, oid) for th, (w, oid) in sorted(claimed.items())]
