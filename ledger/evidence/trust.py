"""The auditor's trust root: which EvidenceLog, on which chain, a bundle's head must be
anchored by (docs/bundle.md, "Trust root").

Anyone can deploy an EvidenceLog and anchor any head on it, so a bundle that names its own
contract proves nothing until the verifier pins that contract, as sigstore pins its roots. The
trust file (``evidence-escrow/trust/v1``) says which contract, on which chain, deployed by
which transaction in which block, and optionally by whom; `ledger deploy` writes it for
auditors (``<data dir>/trust/<chain id>.json``) and ``ledger verify --trust FILE`` reads it.
``--expect-chain-id`` and ``--expect-contract`` pin the same two facts without a file (and
without the deployment to check).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ledger._internal import jsondoc
from ledger._internal.jsondoc import DocumentStruct
from ledger.errors import TrustRootError
from ledger.evidence.bundle_format import Address, TxHash, Uint, check_address

__all__ = ["TRUST_FORMAT", "Pin", "TrustRoot", "dumps_trust_root", "load_trust_root", "read_trust_root"]

TRUST_FORMAT: Final = "evidence-escrow/trust/v1"


class TrustRoot(DocumentStruct):
    """The trust file: the EvidenceLog an auditor trusts, and how it came to be."""

    format: Literal["evidence-escrow/trust/v1"]  # TRUST_FORMAT
    chain_id: Uint
    contract: Address
    deployment_block: Uint
    deployment_tx: TxHash
    deployer: Address | None = None  # when given, the deployment must have been sent by it

    def __post_init__(self) -> None:
        check_address(self.contract, "contract")
        if self.deployer is not None:
            check_address(self.deployer, "deployer")


def load_trust_root(text: str | bytes, source: str = "trust file") -> TrustRoot:
    """Parse a trust file strictly (as every document is, `ledger._internal.jsondoc`), or
    raise `TrustRootError` naming the file and the field."""
    return jsondoc.load(text, TrustRoot, source=source, what="a trust file", fmt=TRUST_FORMAT,
                        error=TrustRootError)


def read_trust_root(path: Path) -> TrustRoot:
    """The trust file at `path` (see `load_trust_root`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustRootError(f"cannot read the trust file {path}: {exc.strerror}") from None
    return load_trust_root(data, str(path))


def dumps_trust_root(root: TrustRoot) -> str:
    """The trust file as written: indented by two, keys sorted, a final newline."""
    return jsondoc.dumps(root, indent=2)


@dataclass(frozen=True)
class Pin:
    """What the verifier was told to trust about a bundle's anchor. The anchor is pinned only
    when both the chain and the contract are; `root` adds the deployment to check."""

    chain_id: int | None = None
    contract: str | None = None  # EIP-55 checksum case
    root: TrustRoot | None = None

    @classmethod
    def of(cls, root: TrustRoot) -> Pin:
        return cls(root.chain_id, root.contract, root)

    @property
    def complete(self) -> bool:
        return self.chain_id is not None and self.contract is not None
