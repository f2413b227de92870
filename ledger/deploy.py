"""Deploy the contracts and keep a deployment manifest per chain id.

The manifest (``<data dir>/deployments/<chain id>.json``) records, per contract: address,
deploy transaction, block number and hash, deployer, compiler, and the SHA-256 of the
runtime bytecode. Re-running a deployment recognises a live contract whose on-chain code
matches the current build and does nothing. Deploying the EvidenceLog also writes the trust
file auditors pin it with (``<data dir>/trust/<chain id>.json``, `ledger.evidence.trust`).
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger._internal import canonical, jsondoc, solc
from ledger._internal.jsondoc import DocumentStruct
from ledger.chain.rpc import Chain
from ledger.errors import DeploymentError
from ledger.escrow.client import EscrowClient
from ledger.escrow.types import Terms, panel_extra_data
from ledger.evidence.trust import TRUST_FORMAT, TrustRoot, dumps_trust_root

MANIFEST_FORMAT = "evidence-escrow/deployment/v1"

_logger = logging.getLogger(__name__)

#: deposit an order locks, in basis points of its price, in terms version 1 unless deployed otherwise
DEFAULT_DEPOSIT_RATIO_BPS = 2_000

#: admin delay of a deployment to anything but a local node, unless deployed otherwise: 2 days
DEFAULT_ADMIN_DELAY = 2 * 86_400


class ManifestEntry(DocumentStruct):
    """One deployed contract, as the manifest records it."""

    name: str
    address: str
    tx_hash: str
    block_number: int
    block_hash: str
    deployer: str
    compiler: str
    runtime_sha256: str


class DeploymentManifest(DocumentStruct):
    """``<data dir>/deployments/<chain id>.json``: the contracts deployed on one chain, by name."""

    format: str
    chain_id: int
    contracts: dict[str, ManifestEntry]


class Deployment(ManifestEntry, kw_only=True):
    """A contract deployment as a deploy call returns it: the manifest entry, and whether an
    existing matching deployment was recognised instead of deploying anew."""

    reused: bool = False

    @classmethod
    def recognised(cls, entry: ManifestEntry) -> Deployment:
        """The manifest's live deployment, reused as it is."""
        return cls(reused=True, **msgspec.structs.asdict(entry))

    def entry(self) -> ManifestEntry:
        """What the manifest records of this deployment (everything but `reused`)."""
        return ManifestEntry(**{f: getattr(self, f) for f in ManifestEntry.__struct_fields__})

    def to_json(self) -> dict[str, Any]:
        json_entry: dict[str, Any] = jsondoc.to_json(self.entry())
        return json_entry


def manifest_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "deployments" / f"{chain_id}.json"


def read_manifest(data_dir: Path, chain_id: int) -> DeploymentManifest | None:
    """The chain's manifest, None when there is none yet, or `DeploymentError` naming the file
    and the field when it is not a deployment manifest for this chain."""
    path = manifest_path(data_dir, chain_id)
    if not path.exists():
        return None
    manifest = jsondoc.load(path.read_bytes(), DeploymentManifest, source=str(path),
                            what="a deployment manifest", fmt=MANIFEST_FORMAT, error=DeploymentError)
    if manifest.chain_id != chain_id:
        raise DeploymentError(f"{path} is the deployment manifest of chain {manifest.chain_id}, "
                              f"not of chain {chain_id}")
    return manifest


def _write_atomically(path: Path, text: str) -> Path:
    """Write a file so that a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _write_manifest(data_dir: Path, manifest: DeploymentManifest) -> Path:
    return _write_atomically(manifest_path(data_dir, manifest.chain_id), jsondoc.dumps(manifest, indent=2))


def trust_root_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "trust" / f"{chain_id}.json"


def trust_root(chain_id: int, log: Deployment) -> TrustRoot:
    """The trust file of an EvidenceLog deployment: what an auditor pins it by."""
    return TrustRoot(format=TRUST_FORMAT, chain_id=chain_id, contract=log.address,
                     deployment_block=log.block_number, deployment_tx=log.tx_hash, deployer=log.deployer)


def _entry(manifest: DeploymentManifest | None, name: str) -> ManifestEntry | None:
    return None if manifest is None else manifest.contracts.get(name)


def live_matches(chain: Chain, address: str, name: str) -> bool:
    """Whether `address` holds exactly the current build's runtime code for `name`."""
    code = chain.w3.eth.get_code(to_checksum_address(address))
    return solc.artifacts()[name].matches_deployed(bytes(code))


def deploy_contract(
    chain: Chain, data_dir: Path | None, name: str, *args: Any, redeploy: bool = False
) -> Deployment:
    """Deploy `name` with constructor `args`, or recognise the manifest's live deployment.

    Idempotent: when the chain's manifest names a contract of this name whose on-chain code
    is the current build, nothing is sent. A manifest entry whose code does not match (a
    reset node, a changed build) is an error unless `redeploy` is set.
    """
    art = solc.artifacts()[name]
    entry = _entry(read_manifest(data_dir, chain.chain_id), name) if data_dir else None
    if entry and not redeploy:
        if live_matches(chain, entry.address, name):
            _logger.info("%s at %s on chain %d matches the current build: reused", name, entry.address,
                         chain.chain_id)
            return Deployment.recognised(entry)
        raise DeploymentError(
            f"the manifest names {name} at {entry.address} on chain {chain.chain_id}, but the "
            "code there does not match the current build (no code, or other bytecode). "
            "Run `ledger deploy --redeploy` to deploy anew."
        )
    sender = chain.default_account
    contract, receipt = chain.deploy_with_receipt(name, *args, sender=sender)
    dep = Deployment(
        name=name,
        address=contract.address,
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        block_hash="0x" + bytes(receipt["blockHash"]).hex(),
        deployer=sender.address,
        compiler=art.compiler,
        runtime_sha256=art.runtime_hash,
        reused=False,
    )
    _logger.info("deployed %s at %s on chain %d (block %d)", name, dep.address, chain.chain_id,
                 dep.block_number)
    if data_dir is not None:
        manifest = read_manifest(data_dir, chain.chain_id)  # re-read: another entry may be new
        contracts = {} if manifest is None else dict(manifest.contracts)
        contracts[name] = dep.entry()
        _write_manifest(data_dir, DeploymentManifest(MANIFEST_FORMAT, chain.chain_id, contracts))
    return dep


def deploy_evidence_log(
    chain: Chain, data_dir: Path | None, *, admin: str | None = None, redeploy: bool = False
) -> Deployment:
    """Deploy EvidenceLog (idempotent when a manifest names a matching live contract); with a
    data dir, also (re)write its trust file (`trust_root_path`) for auditors."""
    dep = deploy_contract(
        chain, data_dir, "EvidenceLog", admin or chain.default_account.address, redeploy=redeploy
    )
    if data_dir is not None:
        _write_atomically(trust_root_path(data_dir, chain.chain_id),
                          dumps_trust_root(trust_root(chain.chain_id, dep)))
    return dep


def deployed(chain: Chain, data_dir: Path, name: str) -> Contract:
    """A contract deployed on this chain, from the manifest, checked against the chain."""
    entry = _entry(read_manifest(data_dir, chain.chain_id), name)
    if not entry:
        raise DeploymentError(
            f"no {name} deployment for chain {chain.chain_id} in "
            f"{manifest_path(data_dir, chain.chain_id)}: run `ledger deploy` first"
        )
    if not live_matches(chain, entry.address, name):
        raise DeploymentError(
            f"{name} at {entry.address} (from the manifest) has no matching code on chain "
            f"{chain.chain_id}: was the node reset? Run `ledger deploy` again."
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
    redeploy: bool = False,
) -> EscrowDeployment:
    """Deploy PanelArbitrator (the panel, N of M, at `arbitration_cost`: its epoch 1),
    FulfillmentEscrow using it, the stateless EscrowTermsRules the escrow checks its admin
    against, and the EscrowBatcher relayers use.

    Terms version 1 takes `terms` overrides of `ledger.escrow.Terms`, the deposit ratio and the
    panel's current epoch (so the orders funded under it are decided by that panel at that
    cost, whatever panels come later). `treasury` (default: the deployer) receives platform
    fees. The deployer is the admin of both; with `admin_delay` > 0 seconds, `hand_over_admin`
    then gives both admin roles to an AdminTimelock (OpenZeppelin TimelockController) with
    that delay, the deployer as its proposer and executor. Idempotent like `deploy_contract`.
    """
    admin = chain.default_account.address
    rules = deploy_contract(chain, data_dir, "EscrowTermsRules", redeploy=redeploy)
    batcher = deploy_contract(chain, data_dir, "EscrowBatcher", redeploy=redeploy)
    arb = deploy_contract(
        chain, data_dir, "PanelArbitrator", admin, panel, threshold, arbitration_cost,
        redeploy=redeploy,
    )  # fmt: skip
    epoch = int(chain.call(chain.contract("PanelArbitrator", arb.address).functions.panel())[0])
    t = Terms(**{"deposit_ratio_bps": deposit_ratio_bps, **(terms or {})}, arbitrator=arb.address,
              arbitrator_extra_data=panel_extra_data(epoch))
    esc = deploy_contract(
        chain, data_dir, "FulfillmentEscrow", rules.address, admin, treasury or admin, t.as_tuple(),
        meta_evidence_uri(t), redeploy=redeploy,
    )  # fmt: skip
    timelock = None
    if admin_delay > 0:
        timelock = deploy_contract(chain, data_dir, "AdminTimelock", admin_delay, [admin], [admin],
                                   redeploy=redeploy)
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
