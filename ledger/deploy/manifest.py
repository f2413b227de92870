"""The deployment manifest: what was deployed on one chain, how it is configured, and its history.

``<data dir>/deployments/<chain id>.json`` (format ``evidence-escrow/deployment/v2``) holds

* ``contracts``: per live contract, its address, deploy transaction, block, deployer, compiler,
  the SHA-256 of the build's runtime code (immutables zeroed), of the code the chain holds
  (immutables set: what later commands compare against, so a rebuilt source with the same ABI
  keeps working with what is deployed) and of its ABI, and the deployment's gas and cost;
* ``configuration``: the whole configuration as the chain reported it after the last deploy
  or admin change (`ledger.deploy.config`): every role and its holders, the panel and its
  threshold and cost, the treasury, the current terms and their version, the admin delay;
* ``retired``: contracts a redeploy replaced (an earlier EvidenceLog's heads stay verifiable
  with its own trust file, kept beside the current one);
* ``history``: what was done, in order: deployments, redeploys, a moved log, configuration
  changes, each with its transactions.

A v1 manifest (no configuration, no history) is read as a v2 one with both empty; the next
write upgrades it. `ledger deploy --check` compares the manifest with the chain.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from ledger._internal import jsondoc
from ledger._internal.jsondoc import DocumentStruct
from ledger._internal.rfc3339 import rfc3339
from ledger.errors import DeploymentError
from ledger.evidence.trust import TRUST_FORMAT, TrustRoot

__all__ = [
    "MANIFEST_FORMAT", "MANIFEST_FORMAT_V1", "Configuration", "Deployment", "DeploymentManifest",
    "HistoryEvent", "ManifestEntry", "PanelConfig", "append_history", "event", "manifest_path",
    "read_manifest", "retired_trust_path", "trust_root", "trust_root_path", "write_atomically",
    "write_manifest",
]

MANIFEST_FORMAT = "evidence-escrow/deployment/v2"
MANIFEST_FORMAT_V1 = "evidence-escrow/deployment/v1"


class ManifestEntry(DocumentStruct):
    """One deployed contract, as the manifest records it."""

    name: str
    address: str
    tx_hash: str
    block_number: int
    block_hash: str
    deployer: str
    compiler: str
    runtime_sha256: str  # the build's runtime code, immutables zeroed
    code_sha256: str | None = None  # the code on chain after deployment (absent in v1 manifests)
    abi_sha256: str | None = None  # the ABI it was deployed with (absent in v1 manifests)
    gas_used: int | None = None
    cost_wei: int | None = None


class PanelConfig(DocumentStruct):
    """The PanelArbitrator's current epoch."""

    epoch: int
    members: list[str]
    threshold: int
    cost: int


class Configuration(DocumentStruct):
    """The deployment's configuration as the chain reported it at `block_number`."""

    block_number: int
    #: contract name -> role name -> holders (checksummed, sorted)
    roles: dict[str, dict[str, list[str]]]
    panel: PanelConfig | None = None
    treasury: str | None = None
    terms_id: int | None = None
    terms: dict[str, Any] | None = None
    admin_delay: int | None = None  # the AdminTimelock's delay, when it holds the admin roles


class HistoryEvent(DocumentStruct):
    """One thing done to the deployment."""

    time: str
    event: str  # deployed | redeployed | log moved | configured | admin change
    detail: str
    contract: str | None = None
    address: str | None = None
    block_number: int | None = None
    tx_hashes: list[str] = msgspec.field(default_factory=list)


class DeploymentManifest(DocumentStruct):
    """``<data dir>/deployments/<chain id>.json``: the contracts deployed on one chain, by name."""

    format: str
    chain_id: int
    contracts: dict[str, ManifestEntry]
    configuration: Configuration | None = None
    retired: list[ManifestEntry] = msgspec.field(default_factory=list)
    history: list[HistoryEvent] = msgspec.field(default_factory=list)


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
    """The chain's manifest (a v1 one read as v2), None when there is none yet, or
    `DeploymentError` naming the file and the field when it is not a deployment manifest for
    this chain."""
    path = manifest_path(data_dir, chain_id)
    if not path.exists():
        return None
    manifest = jsondoc.load(path.read_bytes(), DeploymentManifest, source=str(path),
                            what="a deployment manifest", fmt=None, error=DeploymentError)
    if manifest.format not in (MANIFEST_FORMAT, MANIFEST_FORMAT_V1):
        raise DeploymentError(f"{path} is not a deployment manifest (format must be {MANIFEST_FORMAT!r})")
    if manifest.chain_id != chain_id:
        raise DeploymentError(f"{path} is the deployment manifest of chain {manifest.chain_id}, "
                              f"not of chain {chain_id}")
    return msgspec.structs.replace(manifest, format=MANIFEST_FORMAT)


def write_atomically(path: Path, text: str) -> Path:
    """Write a file so that a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_manifest(data_dir: Path, manifest: DeploymentManifest) -> Path:
    return write_atomically(manifest_path(data_dir, manifest.chain_id), jsondoc.dumps(manifest, indent=2))


def append_history(data_dir: Path, chain_id: int, events: list[HistoryEvent],
                   configuration: Configuration | None = None) -> DeploymentManifest:
    """Append `events` to the manifest's history (and replace its configuration, if given)."""
    manifest = read_manifest(data_dir, chain_id) or DeploymentManifest(MANIFEST_FORMAT, chain_id, {})
    manifest = msgspec.structs.replace(
        manifest, history=[*manifest.history, *events],
        configuration=configuration if configuration is not None else manifest.configuration)
    write_manifest(data_dir, manifest)
    return manifest


def event(what: str, detail: str, **fields: Any) -> HistoryEvent:
    return HistoryEvent(time=rfc3339(), event=what, detail=detail, **fields)


def trust_root_path(data_dir: Path, chain_id: int) -> Path:
    return data_dir / "trust" / f"{chain_id}.json"


def retired_trust_path(data_dir: Path, chain_id: int, address: str) -> Path:
    """Where the trust file of an EvidenceLog a `--move-log` redeploy replaced is kept."""
    return data_dir / "trust" / f"{chain_id}-{address.lower()}.json"


def trust_root(chain_id: int, log: ManifestEntry) -> TrustRoot:
    """The trust file of an EvidenceLog deployment: what an auditor pins it by."""
    return TrustRoot(format=TRUST_FORMAT, chain_id=chain_id, contract=log.address,
                     deployment_block=log.block_number, deployment_tx=log.tx_hash, deployer=log.deployer)
