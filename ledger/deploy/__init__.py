"""Deploy the contracts and keep a deployment manifest per chain id (`ledger.deploy.manifest`).

Re-running a deployment recognises a live contract (the code the chain holds is the code the
manifest recorded) and sends nothing. `ledger.deploy.plan` checks a whole request before the
first transaction and lists what a re-run would change on a live deployment; redeploys are
per contract. Deploying the EvidenceLog also writes the trust file auditors pin it with
(``<data dir>/trust/<chain id>.json``, `ledger.evidence.trust`). Later commands find their
contracts with `deployed`, which checks the chain's code against the manifest's hash and the
local build's ABI against the deployed one, so a source edit that leaves the ABI alone (a
comment, an optimisation) does not stop operations, and one that changes it is named.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger._internal import canonical, solc
from ledger.chain.rpc import Chain
from ledger.deploy.manifest import (
    MANIFEST_FORMAT,
    Deployment,
    DeploymentManifest,
    ManifestEntry,
    event,
    manifest_path,
    read_manifest,
    retired_trust_path,
    trust_root,
    trust_root_path,
    write_atomically,
    write_manifest,
)
from ledger.errors import DeploymentError
from ledger.escrow.client import EscrowClient
from ledger.escrow.types import Terms, panel_extra_data
from ledger.evidence.trust import dumps_trust_root

__all__ = [
    "DEFAULT_ADMIN_DELAY", "DEFAULT_DEPOSIT_RATIO_BPS", "MANIFEST_FORMAT", "RULING_TITLES", "Deployment",
    "DeploymentManifest", "EscrowDeployment", "ManifestEntry", "abi_sha256", "admin_timelock",
    "deploy_contract", "deploy_escrow", "deploy_evidence_log", "deployed", "escrow_client", "evidence_log",
    "hand_over_admin", "is_live", "live_matches", "manifest_path", "meta_evidence_uri", "read_manifest",
    "trust_root", "trust_root_path",
]

_logger = logging.getLogger(__name__)

#: deposit an order locks, in basis points of its price, in terms version 1 unless deployed otherwise
DEFAULT_DEPOSIT_RATIO_BPS = 2_000

#: admin delay of a deployment to anything but a local node, unless deployed otherwise: 2 days
DEFAULT_ADMIN_DELAY = 2 * 86_400


def _entry(manifest: DeploymentManifest | None, name: str) -> ManifestEntry | None:
    return None if manifest is None else manifest.contracts.get(name)


def abi_sha256(name: str) -> str:
    """SHA-256 of the local build's ABI of `name` (sorted-key JSON)."""
    abi = solc.artifacts()[name].abi
    return hashlib.sha256(json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def live_matches(chain: Chain, address: str, name: str) -> bool:
    """Whether `address` holds exactly the current build's runtime code for `name`."""
    code = chain.w3.eth.get_code(to_checksum_address(address))
    return solc.artifacts()[name].matches_deployed(bytes(code))


def is_live(chain: Chain, entry: ManifestEntry) -> bool:
    """Whether the chain holds at the entry's address the code the manifest recorded (a v1
    entry, without that hash: the current build's code)."""
    if entry.code_sha256 is None:
        return live_matches(chain, entry.address, entry.name)
    code = bytes(chain.w3.eth.get_code(to_checksum_address(entry.address)))
    return bool(code) and hashlib.sha256(code).hexdigest() == entry.code_sha256


def deploy_contract(
    chain: Chain, data_dir: Path | None, name: str, *args: Any, redeploy: bool = False
) -> Deployment:
    """Deploy `name` with constructor `args`, or recognise the manifest's live deployment.

    Idempotent: when the chain's manifest names a contract of this name that is live (`is_live`),
    nothing is sent. A manifest entry that is not live (a reset node) is an error unless
    `redeploy` is set. A redeploy keeps the replaced entry among the manifest's ``retired``
    and notes it in its history.
    """
    art = solc.artifacts()[name]
    old = _entry(read_manifest(data_dir, chain.chain_id), name) if data_dir else None
    if old and not redeploy:
        if is_live(chain, old):
            _logger.info("%s at %s on chain %d is live: reused", name, old.address, chain.chain_id)
            return Deployment.recognised(old)
        raise DeploymentError(
            f"the manifest names {name} at {old.address} on chain {chain.chain_id}, but the chain holds "
            "other code there, or none (was the node reset?). Run `ledger deploy --redeploy` to deploy "
            "anew what is gone."
        )
    sender = chain.default_account
    contract, receipt = chain.deploy_with_receipt(name, *args, sender=sender)
    code = bytes(chain.w3.eth.get_code(contract.address))
    dep = Deployment(
        name=name, address=contract.address, tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]), block_hash="0x" + bytes(receipt["blockHash"]).hex(),
        deployer=sender.address, compiler=art.compiler, runtime_sha256=art.runtime_hash,
        code_sha256=hashlib.sha256(code).hexdigest(), abi_sha256=abi_sha256(name),
        gas_used=int(receipt["gasUsed"]), cost_wei=chain.cost(receipt).cost_wei, reused=False,
    )  # fmt: skip
    _logger.info("deployed %s at %s on chain %d (block %d)", name, dep.address, chain.chain_id,
                 dep.block_number)
    if data_dir is not None:
        _record(data_dir, chain.chain_id, dep, old)
    return dep


def _record(data_dir: Path, chain_id: int, dep: Deployment, old: ManifestEntry | None) -> None:
    manifest = read_manifest(data_dir, chain_id) or DeploymentManifest(MANIFEST_FORMAT, chain_id, {})
    what = "redeployed" if old else "deployed"
    detail = f"{dep.name} {what} at {dep.address}" + (f", replacing {old.address}" if old else "")
    manifest = msgspec.structs.replace(
        manifest, contracts={**manifest.contracts, dep.name: dep.entry()},
        retired=[*manifest.retired, *([old] if old else [])],
        history=[*manifest.history, event(what, detail, contract=dep.name, address=dep.address,
                                          block_number=dep.block_number, tx_hashes=[dep.tx_hash])])
    write_manifest(data_dir, manifest)


def deploy_evidence_log(
    chain: Chain, data_dir: Path | None, *, admin: str | None = None, redeploy: bool = False
) -> Deployment:
    """Deploy EvidenceLog (idempotent when a manifest names a live one); with a data dir, also
    (re)write its trust file (`trust_root_path`) for auditors, keeping a replaced log's trust
    file as `retired_trust_path` so that its anchored heads stay verifiable."""
    old = _entry(read_manifest(data_dir, chain.chain_id), "EvidenceLog") if data_dir else None
    dep = deploy_contract(
        chain, data_dir, "EvidenceLog", admin or chain.default_account.address, redeploy=redeploy
    )
    if data_dir is not None:
        current = trust_root_path(data_dir, chain.chain_id)
        if old is not None and not dep.reused and old.address != dep.address and current.exists():
            write_atomically(retired_trust_path(data_dir, chain.chain_id, old.address), current.read_text())
        write_atomically(current, dumps_trust_root(trust_root(chain.chain_id, dep)))
    return dep


def deployed(chain: Chain, data_dir: Path, name: str) -> Contract:
    """A contract deployed on this chain, from the manifest, checked against the chain (the
    code it recorded, `is_live`) and against the local build's ABI (what calls are encoded with)."""
    entry = _entry(read_manifest(data_dir, chain.chain_id), name)
    if not entry:
        raise DeploymentError(
            f"no {name} deployment for chain {chain.chain_id} in "
            f"{manifest_path(data_dir, chain.chain_id)}: run `ledger deploy` first"
        )
    if not is_live(chain, entry):
        raise DeploymentError(
            f"{name} at {entry.address} (from the manifest) has no code on chain {chain.chain_id}, or other "
            "code than was deployed there: was the node reset? `ledger deploy --check` lists what differs; "
            "`ledger deploy --redeploy` deploys anew what is gone."
        )
    if entry.abi_sha256 is not None and entry.abi_sha256 != abi_sha256(name):
        raise DeploymentError(
            f"the local build's ABI of {name} differs from the one it was deployed with at {entry.address} "
            f"(ABI sha256 {entry.abi_sha256[:16]}…): calls would be encoded for functions the deployed "
            f"contract may not have. Build the sources it was deployed from, or `ledger deploy --redeploy "
            f"{name}` to deploy this build."
        )
    return chain.contract(name, entry.address)


def escrow_client(chain: Chain, data_dir: Path) -> EscrowClient:
    """A client of this chain's deployed FulfillmentEscrow and PanelArbitrator (see `deployed`)."""
    return EscrowClient(chain, deployed(chain, data_dir, "FulfillmentEscrow"),
                        deployed(chain, data_dir, "PanelArbitrator"))


def admin_timelock(chain: Chain, data_dir: Path) -> tuple[Contract, int] | None:
    """The manifest's AdminTimelock and its deployment block, if it holds the escrow's admin
    role (a deployment with an admin delay); None when admin changes apply at once."""
    entry = _entry(read_manifest(data_dir, chain.chain_id), "AdminTimelock")
    if entry is None:
        return None
    escrow = deployed(chain, data_dir, "FulfillmentEscrow")
    role = bytes(chain.call(escrow.functions.DEFAULT_ADMIN_ROLE()))
    if not chain.call(escrow.functions.hasRole(role, entry.address)):
        return None
    return deployed(chain, data_dir, "AdminTimelock"), entry.block_number


def evidence_log(chain: Chain, data_dir: Path) -> Contract:
    """The deployed EvidenceLog for this chain (see `deployed`)."""
    return deployed(chain, data_dir, "EvidenceLog")


# --- the escrow -------------------------------------------------------------------------

RULING_TITLES = [
    "Refused to arbitrate: split the price 50/50",
    "Refund the buyer in full",
    "Release to the merchant (or its lender) in full",
    "Fraud: refund in full and compensate the buyer from the merchant's deposit, then the reserve",
]


def meta_evidence_uri(terms: Terms) -> str:
    """ERC-1497 meta-evidence for a terms version, as a self-contained ``data:`` URI (JCS JSON)."""
    doc = {
        "category": "Escrow",
        "title": "Live-commerce order fulfillment",
        "description": (
            "The buyer's payment is held in escrow and released to the merchant only on "
            "evidenced performance: a registered carrier's signed shipment and delivery "
            "attestations, then an inspection window. Evidence references leaves of the "
            "platform's RFC 9162 evidence log (anchored on chain)."
        ),
        "question": "Did the merchant perform the order as agreed?",
        "rulingOptions": {
            "type": "single-select",
            "titles": RULING_TITLES[1:],
            "descriptions": RULING_TITLES[1:],
            "splitRulings": "ruling 4 + b (b = 0..10000): the buyer receives b basis points of the price",
        },
        "terms": {
            "feeBps": terms.fee_bps, "reserveBps": terms.reserve_bps,
            "compensationBps": terms.compensation_bps, "deliveryWindow": terms.delivery_window,
            "returnShipWindow": terms.return_ship_window,
            "returnDeliveryWindow": terms.return_delivery_window,
            "returnInspectionWindow": terms.return_inspection_window,
            "responseWindow": terms.response_window, "arbitrationWindow": terms.arbitration_window,
            "depositRatioBps": terms.deposit_ratio_bps,
        },  # fmt: skip
    }
    return "data:application/json;base64," + base64.b64encode(canonical.dumps_strict(doc)).decode()


@dataclass(frozen=True)
class EscrowDeployment:
    escrow: Deployment
    arbitrator: Deployment
    rules: Deployment  # EscrowTermsRules: the hard bounds the escrow's admin cannot exceed
    batcher: Deployment  # EscrowBatcher: relayers batch permissionless steps through it
    timelock: Deployment | None = None  # AdminTimelock holding both admin roles, if any

    @property
    def deployments(self) -> list[Deployment]:
        return [self.arbitrator, self.rules, self.escrow, self.batcher,
                *([self.timelock] if self.timelock else [])]


def deploy_escrow(
    chain: Chain,
    data_dir: Path | None,
    *,
    panel: list[str],
    threshold: int,
    arbitration_cost: int = 0,
    treasury: str | None = None,
    deposit_ratio_bps: int = DEFAULT_DEPOSIT_RATIO_BPS,
    terms: dict[str, Any] | None = None,
    admin_delay: int = 0,
    redeploy: bool | Collection[str] = False,
    proposers: Sequence[str] = (),
    executors: Sequence[str] = (),
) -> EscrowDeployment:
    """Deploy PanelArbitrator (the panel, N of M, at `arbitration_cost`: its epoch 1),
    FulfillmentEscrow using it, the stateless EscrowTermsRules the escrow checks its admin
    against, and the EscrowBatcher relayers use.

    Terms version 1 takes `terms` overrides of `ledger.escrow.Terms`, the deposit ratio and the
    panel's current epoch (so the orders funded under it are decided by that panel at that
    cost, whatever panels come later). `treasury` (default: the deployer) receives platform
    fees. The deployer is the admin of both; with `admin_delay` > 0 seconds, `hand_over_admin`
    then gives both admin roles to an AdminTimelock (OpenZeppelin TimelockController) with
    that delay, `proposers` and `executors` (default: the deployer) scheduling and executing.
    Idempotent like `deploy_contract`; `redeploy` is True (every contract) or the names to
    deploy anew (`ledger.deploy.plan.redeploy_set` decides which may go alone).
    """
    admin = chain.default_account.address

    def again(name: str) -> bool:
        return redeploy if isinstance(redeploy, bool) else name in redeploy

    rules = deploy_contract(chain, data_dir, "EscrowTermsRules", redeploy=again("EscrowTermsRules"))
    batcher = deploy_contract(chain, data_dir, "EscrowBatcher", redeploy=again("EscrowBatcher"))
    arb = deploy_contract(
        chain, data_dir, "PanelArbitrator", admin, panel, threshold, arbitration_cost,
        redeploy=again("PanelArbitrator"),
    )  # fmt: skip
    epoch = int(chain.call(chain.contract("PanelArbitrator", arb.address).functions.panel())[0])
    t = Terms(**{"deposit_ratio_bps": deposit_ratio_bps, **(terms or {})}, arbitrator=arb.address,
              arbitrator_extra_data=panel_extra_data(epoch))
    esc = deploy_contract(
        chain, data_dir, "FulfillmentEscrow", rules.address, admin, treasury or admin, t.as_tuple(),
        meta_evidence_uri(t), redeploy=again("FulfillmentEscrow"),
    )  # fmt: skip
    timelock = None
    if admin_delay > 0:
        timelock = deploy_contract(chain, data_dir, "AdminTimelock", admin_delay, list(proposers) or [admin],
                                   list(executors) or [admin], redeploy=again("AdminTimelock"))
    return EscrowDeployment(esc, arb, rules, batcher, timelock)


def hand_over_admin(chain: Chain, dep: EscrowDeployment) -> list[str]:
    """Give the escrow's and the panel's admin role to `dep.timelock` and renounce the
    deployer's, so that every later admin change waits out the timelock's delay. Call it after
    the deployment's initial configuration (carriers, tokens). Idempotent; returns what it did."""
    if dep.timelock is None:
        return []
    done: list[str] = []
    me = chain.default_account
    for dep_ in (dep.escrow, dep.arbitrator):
        name = "FulfillmentEscrow" if dep_ is dep.escrow else "PanelArbitrator"
        c = chain.contract(name, dep_.address)
        role = bytes(chain.call(c.functions.DEFAULT_ADMIN_ROLE()))
        if not chain.call(c.functions.hasRole(role, dep.timelock.address)):
            chain.transact(c.functions.grantRole(role, dep.timelock.address), me)
            done.append(f"{name}: admin role granted to AdminTimelock {dep.timelock.address}")
        if chain.call(c.functions.hasRole(role, me.address)):
            chain.transact(c.functions.renounceRole(role, me.address), me)
            done.append(f"{name}: the deployer's admin role renounced")
    return done
