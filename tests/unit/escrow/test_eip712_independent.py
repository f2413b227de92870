"""An EIP-712 encoder written from the EIP-712 text alone (keccak and eth_abi, no typed-data
library, nothing of ledger's encoder), as an integrator with another wallet would: its digests
of an Offer and of each attestation type must equal

(a) the project's (`ledger.escrow.eip712`: its typed data as eth_account hashes it, and the
    signatures `sign_offer` / `sign_attestation` make),
(b) the contract's: a raw signature over the independent digest (`Account.unsafe_sign_hash`,
    no typed-data step at all) is accepted by `fund`, `ship`, `deliver`, `shipReturn` and
    `deliverReturn`, with the domain read from the contract's own ERC-5267 `eip712Domain()`,
(c) what a wallet is given: the project's typed data as eth_signTypedData_v4 JSON (hex strings,
    decimal-string integers) hashes, through eth_account's `encode_typed_data(full_message=)`,
    to the same digest.

It also holds the contract to the signature encoding docs/integrating.md states: 65 bytes
r ‖ s ‖ v with v 27 or 28 and low s.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain.abi import jsonable
from ledger.dev.sandbox import EscrowEnv
from ledger.errors import ContractRevert
from ledger.escrow.eip712 import Attestation, Offer
from ledger.escrow.types import OrderState

# The type strings as docs/integrating.md and FulfillmentEscrow.sol spell them.
TYPES = {
    "EIP712Domain": "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
    "Offer": "Offer(bytes32 orderId,address merchant,address buyer,address token,uint256 price,uint64 shipBy,"
             "uint32 inspectionWindow,bytes32 orderRecord,uint64 expiresAt,uint16 termsId)",
    "Shipment": "Shipment(bytes32 orderId,string tracking,uint64 shippedAt,bytes32 evidence)",
    "Delivery": "Delivery(bytes32 orderId,string tracking,uint64 deliveredAt,bytes32 evidence)",
    "ReturnShipment": "ReturnShipment(bytes32 orderId,string tracking,uint64 shippedAt,bytes32 evidence)",
    "ReturnDelivery": "ReturnDelivery(bytes32 orderId,string tracking,uint64 deliveredAt,bytes32 evidence)",
}
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DAY = 86_400


# --- the encoder, from EIP-712 ---------------------------------------------------------------

def _members(type_string: str) -> list[tuple[str, str]]:
    """[(type, name)] of a type string without references (none of these has any)."""
    inner = re.fullmatch(r"\w+\((.*)\)", type_string)
    assert inner is not None
    return [tuple(m.split(" ")) for m in inner.group(1).split(",")]  # type: ignore[misc]


def _encode_value(typ: str, value: Any) -> bytes:
    """encodeData of one member: dynamic `string`/`bytes` as keccak256 of their content, atomic
    values as their 32-byte ABI encoding."""
    if typ == "string":
        return bytes(keccak(value.encode("utf-8")))
    if typ == "bytes":
        return bytes(keccak(value))
    if typ.startswith("bytes"):  # bytesN: right-padded to 32 bytes
        return bytes(value).ljust(32, b"\0")
    return encode([typ], [value])


def hash_struct(type_string: str, values: dict[str, Any]) -> bytes:
    """hashStruct(s) = keccak256(typeHash ‖ encodeData(s)), typeHash = keccak256(encodeType)."""
    members = _members(type_string)
    assert sorted(values) == sorted(name for _, name in members)
    return bytes(keccak(keccak(text=type_string) + b"".join(_encode_value(t, values[n]) for t, n in members)))


def digest(domain: dict[str, Any], primary: str, message: dict[str, Any]) -> bytes:
    """keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))."""
    separator = hash_struct(TYPES["EIP712Domain"], domain)
    return bytes(keccak(b"\x19\x01" + separator + hash_struct(TYPES[primary], message)))


def _address(a: str) -> str:
    return a.lower()


def offer_values(o: Offer) -> dict[str, Any]:
    return {"orderId": o.order_id, "merchant": _address(o.merchant), "buyer": _address(o.buyer),
            "token": _address(o.token), "price": o.price, "shipBy": o.ship_by,
            "inspectionWindow": o.inspection_window, "orderRecord": o.order_record, "expiresAt": o.expires_at,
            "termsId": o.terms_id}


def attestation_values(a: Attestation) -> dict[str, Any]:
    time_field = "shippedAt" if a.kind.endswith("Shipment") else "deliveredAt"
    return {"orderId": a.order_id, "tracking": a.tracking, time_field: a.at, "evidence": a.evidence}


def contract_domain(env: EscrowEnv) -> dict[str, Any]:
    """The domain as the contract publishes it (ERC-5267): only the fields it marks as used."""
    fields, name, version, chain_id, contract, salt, extensions = env.chain.call(
        env.client.escrow.functions.eip712Domain())
    assert fields == b"\x0f" and salt == bytes(32) and list(extensions) == []  # no salt, no extensions
    return {"name": name, "version": version, "chainId": chain_id, "verifyingContract": _address(contract)}


def raw_sign(key: LocalAccount, message_digest: bytes) -> bytes:
    """65 bytes r ‖ s ‖ v over a digest, with no typed-data step in between."""
    return bytes(Account.unsafe_sign_hash(message_digest, key.key).signature)


# --- fixtures ----------------------------------------------------------------------------------

def _offer(env: EscrowEnv, label: str, price: int = 1_234_567_891) -> Offer:
    now = env.chain.timestamp()
    # The escrow order id lies in the merchant's namespace: its 20 address bytes, then 12 of a hash.
    order_id = bytes.fromhex(env.merchant.address[2:]) + bytes(keccak(text=f"independent-{label}"))[:12]
    return Offer(order_id=order_id, merchant=env.merchant.address,
                 buyer=env.buyer.address, token=env.token, price=price, ship_by=now + 2 * DAY,
                 inspection_window=DAY, order_record=bytes(keccak(text=f"order record {label}")),
                 expires_at=now + DAY, terms_id=env.client.current_terms_id())


def _attestation(env: EscrowEnv, kind: str, oid: bytes, tracking: str) -> Attestation:
    return Attestation(kind, oid, tracking, env.chain.timestamp(), bytes(keccak(text=f"{kind} leaf")))


def test_the_project_uses_the_documented_type_strings(escrow_env: EscrowEnv) -> None:
    env = escrow_env
    offer = _offer(env, "types")
    samples: list[Offer | Attestation] = [offer] + [
        _attestation(env, k, offer.order_id, "SF:123") for k in
        ("Shipment", "Delivery", "ReturnShipment", "ReturnDelivery")]
    for item in samples:
        typed = item.typed_data(env.chain.chain_id, env.client.address)
        kind = typed["primaryType"]
        for name in (kind, "EIP712Domain"):
            spelled = f"{name}({','.join(f['type'] + ' ' + f['name'] for f in typed['types'][name])})"
            assert spelled == TYPES[name]


def test_independent_digests_equal_the_projects_encoder_and_signatures(escrow_env: EscrowEnv) -> None:
    env = escrow_env
    domain = contract_domain(env)
    offer = _offer(env, "project")
    cases: list[tuple[Offer | Attestation, str, dict[str, Any], LocalAccount]] = [
        (offer, "Offer", offer_values(offer), env.merchant)]
    for kind in ("Shipment", "Delivery", "ReturnShipment", "ReturnDelivery"):
        att = _attestation(env, kind, offer.order_id, "SF:12345678")
        cases.append((att, kind, attestation_values(att), env.carrier))
    for item, kind, values, signer in cases:
        mine = digest(domain, kind, values)
        typed = item.typed_data(env.chain.chain_id, env.client.address)
        theirs = encode_typed_data(full_message=typed)
        assert keccak(b"\x19" + theirs.version + theirs.header + theirs.body) == mine, kind
        signature = (env.client.sign_offer(signer, item) if isinstance(item, Offer)
                     else env.client.sign_attestation(signer, item))
        assert Account._recover_hash(mine, signature=signature) == signer.address, kind


def _wallet_json(typed: dict[str, Any]) -> dict[str, Any]:
    """The typed data as a wallet's eth_signTypedData_v4 receives it: JSON, bytes as 0x hex,
    uint256 as a decimal string (as JavaScript callers pass numbers beyond 2^53)."""
    doc = json.loads(json.dumps(jsonable(typed)))
    for field in ("price", "chainId"):
        for part in (doc["message"], doc["domain"]):
            if field in part:
                part[field] = str(part[field])
    return doc


def test_wallet_json_of_the_projects_typed_data_gives_the_same_digest(escrow_env: EscrowEnv) -> None:
    env = escrow_env
    domain = contract_domain(env)
    offer = _offer(env, "wallet", price=2**80 + 12345)  # beyond JavaScript's safe integers
    items: list[Offer | Attestation] = [offer] + [
        _attestation(env, k, offer.order_id, "JD:0042") for k in
        ("Shipment", "Delivery", "ReturnShipment", "ReturnDelivery")]
    for item in items:
        doc = _wallet_json(item.typed_data(env.chain.chain_id, env.client.address))
        assert isinstance(doc["message"]["orderId"], str) and doc["message"]["orderId"].startswith("0x")
        message = encode_typed_data(full_message=doc)
        values = offer_values(item) if isinstance(item, Offer) else attestation_values(item)
        assert keccak(b"\x19" + message.version + message.header + message.body) == digest(
            domain, doc["primaryType"], values)


def test_the_contract_accepts_signatures_over_the_independent_digests(escrow_env: EscrowEnv) -> None:
    env, c = escrow_env, escrow_env.client
    domain = contract_domain(env)
    offer = _offer(env, "contract")
    oid = offer.order_id
    c.fund(offer, raw_sign(env.merchant, digest(domain, "Offer", offer_values(offer))), env.buyer)
    assert c.state(oid) == OrderState.FUNDED

    steps = [("Shipment", "SF:778899", env.carrier, c.ship, OrderState.SHIPPED),
             ("Delivery", "SF:778899", env.carrier, c.deliver, OrderState.DELIVERED),
             ("ReturnShipment", "SF:RET778899", env.carrier2, c.ship_return, OrderState.RETURN_SHIPPED),
             ("ReturnDelivery", "SF:RET778899", env.carrier2, c.deliver_return, OrderState.RETURN_DELIVERED)]
    for kind, tracking, carrier, submit, after in steps:
        if kind == "ReturnShipment":
            c.request_return(oid, offer.price // 2, env.buyer)
        att = _attestation(env, kind, oid, tracking)
        submit(att, raw_sign(carrier, digest(domain, kind, attestation_values(att))), env.stranger)
        assert c.state(oid) == after, kind


def _split(signature: bytes) -> tuple[int, int, int]:
    return (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64])


def test_the_signature_encoding_the_docs_state(escrow_env: EscrowEnv) -> None:
    """65 bytes r ‖ s ‖ v, v 27 or 28, low s: the high-s twin, v as 0/1 and the 64-byte compact
    form of the same valid signature are all refused."""
    env, c = escrow_env, escrow_env.client
    domain = contract_domain(env)
    offer = _offer(env, "encoding")
    offer_sig = raw_sign(env.merchant, digest(domain, "Offer", offer_values(offer)))
    r, s, v = _split(offer_sig)
    offer_high_s = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(ContractRevert) as info:  # an offer's signature fails as one error
        c.fund(offer, offer_high_s, env.buyer)
    assert info.value.error_name == "EscrowInvalidSignature"
    c.fund(offer, offer_sig, env.buyer, approve=False)
    att = _attestation(env, "Shipment", offer.order_id, "DHL:5550001")
    good = raw_sign(env.carrier, digest(domain, "Shipment", attestation_values(att)))
    r, s, v = _split(good)
    assert len(good) == 65 and v in (27, 28) and s <= SECP256K1_N // 2

    high_s = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    assert Account._recover_hash(digest(domain, "Shipment", attestation_values(att)),
                                 vrs=(55 - v, r, SECP256K1_N - s)) == env.carrier.address  # same key
    compact = r.to_bytes(32, "big") + ((v - 27) << 255 | s).to_bytes(32, "big")  # ERC-2098
    zero_one_v = good[:64] + bytes([v - 27])
    for bad, error in ((high_s, "ECDSAInvalidSignatureS"), (zero_one_v, "ECDSAInvalidSignature"),
                       (compact, "ECDSAInvalidSignatureLength")):
        with pytest.raises(ContractRevert) as info:
            c.ship(att, bad, env.stranger)
        assert info.value.error_name == error
    # A Shipment signature is not a ReturnShipment one: the type is part of the digest.
    assert digest(domain, "Shipment", attestation_values(att)) != digest(
        domain, "ReturnShipment", attestation_values(att))
    c.ship(att, good, env.stranger)
    assert c.state(offer.order_id) == OrderState.SHIPPED
