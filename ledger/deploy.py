"""Deploy the contracts and keep a deployment manifest per chain id.

The manifest (``<data dir>/deployments/<chain id>.json``) records, per contract: address,
deploy transaction, block number and hash, deployer, compiler, and the SHA-256 of the
runtime bytecode. Re-running a deployment recognises a live contract whose on-chain code
matches the current build and does nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3.contract import Contract

from ledger._internal import solc
from ledger.chain import Chain
from ledger.errors import DeploymentError

MANIFEST_FORMAT = "evidence-escrow/deployment/v1"


@dataclass(frozen=True)
class Deployment:
    name: str
    address: str
    tx_hash: str
    block_number: int
    block_hash: str
    deployer: str
    compiler: str
    runtime_sha256: str
    reused: bool  # True when an existing matching deployment was recognised

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("reused")
        return d


def manifest_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "deployments" / f"{chain_id}.json"


def read_manifest(data_dir: Path, chain_id: int) -> dict[str, Any] | None:
    path = manifest_path(data_dir, chain_id)
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise DeploymentError(f"deployment manifest {path} is not valid JSON: {exc}") from None
    if data.get("format") != MANIFEST_FORMAT or data.get("chain_id") != chain_id:
        raise DeploymentError(f"{path} is not a deployment manifest for chain {chain_id}")
    return data


def _write_manifest(data_dir: Path, chain_id: int, contracts: dict[str, Any]) -> Path:
    path = manifest_path(data_dir, chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": MANIFEST_FORMAT, "chain_id": chain_id, "contracts": contracts}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def live_matches(chain: Chain, address: str, name: str) -> bool:
    """Whether `address` holds exactly the current build's runtime code for `name`."""
    code = bytes(chain.w3.eth.get_code(address))
    return code == solc.artifacts()[name].runtime_bytecode


def deploy_evidence_log(
    chain: Chain, data_dir: Path | None, *, admin: str | None = None, redeploy: bool = False
) -> Deployment:
    """Deploy EvidenceLog (idempotent when a manifest names a matching live contract)."""
    name = "EvidenceLog"
    art = solc.artifacts()[name]
    manifest = read_manifest(data_dir, chain.chain_id) if data_dir else None
    entry = (manifest or {}).get("contracts", {}).get(name)
    if entry and not redeploy:
        if live_matches(chain, entry["address"], name):
            return Deployment(reused=True, **entry)
        raise DeploymentError(
            f"the manifest names {name} at {entry['address']} on chain {chain.chain_id}, but the "
            "code there does not match the current build (no code, or other bytecode). "
            "Run `ledger deploy --redeploy` to deploy a new log (anchoring restarts on it)."
        )
    sender = chain.default_account
    contract, receipt = chain.deploy_with_receipt(name, admin or sender.address, sender=sender)
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
    if data_dir is not None:
        contracts = dict((manifest or {}).get("contracts", {}))
        contracts[name] = dep.to_json()
        _write_manifest(data_dir, chain.chain_id, contracts)
    return dep


def evidence_log(chain: Chain, data_dir: Path) -> Contract:
    """The deployed EvidenceLog for this chain, from the manifest, checked against the chain."""
    manifest = read_manifest(data_dir, chain.chain_id)
    entry = (manifest or {}).get("contracts", {}).get("EvidenceLog")
    if not entry:
        raise DeploymentError(
            f"no EvidenceLog deployment for chain {chain.chain_id} in "
            f"{manifest_path(data_dir, chain.chain_id)}: run `ledger deploy` first"
        )
    if not live_matches(chain, entry["address"], "EvidenceLog"):
        raise DeploymentError(
            f"EvidenceLog at {entry['address']} (from the manifest) has no matching code on chain "
            f"{chain.chain_id}: was the node reset? Run `ledger deploy` again."
        )
    return chain.contract("EvidenceLog", entry["address"])
