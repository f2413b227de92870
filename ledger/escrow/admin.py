"""Admin changes to the escrow and its panel: at once, or scheduled through the timelock.

A deployment made with an admin delay (`ledger deploy --admin-delay`) gives the admin role of
FulfillmentEscrow and PanelArbitrator to an AdminTimelock (OpenZeppelin's TimelockController).
Every change is then an *operation*: scheduled in public (``CallScheduled`` carries each call's
target and data, so anyone can read what will change), executable only once the delay has
passed, and cancellable by a proposer until then. Buyers, merchants and lenders watching the
timelock can act before a change applies; and changes never reach open orders anyway (orders
keep the terms version, panel epoch and deposit ratio they were funded under).

Without a timelock (a development deployment) the same calls are sent at once by the admin.
`Admin` hides the difference: `submit` executes or schedules, `operations` lists what was
scheduled with its state, `execute` and `cancel` act on one operation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger.chain.rpc import Chain
from ledger.errors import DeploymentError, LedgerError
from ledger.escrow.calls import Call
from ledger.escrow.client import EscrowClient

__all__ = ["Admin", "Operation", "Submitted"]

_logger = logging.getLogger(__name__)

ZERO32 = b"\x00" * 32


@dataclass(frozen=True)
class Operation:
    """A batch of admin calls scheduled in the timelock, as its events tell it."""

    id: bytes
    targets: list[str]
    values: list[int]
    payloads: list[bytes]
    predecessor: bytes
    salt: bytes
    ready_at: int  # unix seconds: executable from this time on
    status: str  # "pending" (waiting out the delay), "ready", "done" or "cancelled"
    calls: list[str] = field(default_factory=list)  # decoded: "FulfillmentEscrow.setTreasury(...)"
    scheduled_tx: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": "0x" + self.id.hex(), "status": self.status, "ready_at": self.ready_at,
                "calls": self.calls, "scheduled_tx": self.scheduled_tx}


@dataclass(frozen=True)
class Submitted:
    """What `Admin.submit` did: executed the calls (no timelock), or scheduled them."""

    executed: bool
    calls: list[str]
    operation: Operation | None = None
    tx_hashes: list[str] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)  # of the transactions sent


class Admin:
    """The admin side of one deployment (see the module docstring).

    `sender` signs: the admin itself without a timelock; a proposer (to schedule and cancel)
    or an executor (to execute) of the timelock otherwise. `contracts` names further contracts
    whose calls it describes (the EvidenceLog); without an escrow (a log-only deployment) pass
    `client` None and the `chain`.
    """

    def __init__(self, client: EscrowClient | None, timelock: Contract | None, sender: LocalAccount,
                 *, from_block: int = 0, chain: Chain | None = None,
                 contracts: dict[str, Contract] | None = None) -> None:
        self._client = client
        on = client.chain if client is not None else chain
        if on is None:
            raise ValueError("Admin needs an escrow client or a chain")
        self.chain: Chain = on
        self.timelock = timelock
        self.sender = sender
        self.from_block = from_block
        self.contracts = dict(contracts or {})

    @property
    def client(self) -> EscrowClient:
        if self._client is None:
            raise DeploymentError("this deployment has no FulfillmentEscrow: run `ledger deploy` first")
        return self._client

    # -- reading --------------------------------------------------------------------------
    @property
    def delay(self) -> int:
        """Seconds between scheduling and execution (0 without a timelock)."""
        if self.timelock is None:
            return 0
        return int(self.chain.call(self.timelock.functions.getMinDelay()))

    def describe(self, target: str, data: bytes) -> str:
        """A call as `Contract.function(arg, ...)`, decoded with the escrow's or the panel's ABI."""
        known = [("FulfillmentEscrow", self._client.escrow if self._client else None),
                 ("PanelArbitrator", self._client.arbitrator if self._client else None),
                 ("AdminTimelock", self.timelock), *self.contracts.items()]
        for name, contract in known:
            if contract is None or to_checksum_address(target) != contract.address:
                continue
            try:
                fn, args = contract.decode_function_input(data)
            except ValueError:
                break
            shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
            return f"{name}.{fn.fn_name}({shown})"
        return f"{to_checksum_address(target)} calldata 0x{data.hex()}"

    def operations(self) -> list[Operation]:
        """Every operation scheduled in the timelock, oldest first, with its state now."""
        tl = self.timelock
        if tl is None:
            return []
        scheduled: dict[bytes, list[Any]] = {}
        for log in tl.events.CallScheduled().get_logs(from_block=self.from_block):
            scheduled.setdefault(bytes(log["args"]["id"]), []).append(log)
        salts = {bytes(log["args"]["id"]): bytes(log["args"]["salt"])
                 for log in tl.events.CallSalt().get_logs(from_block=self.from_block)}
        now = self.chain.timestamp()
        out = []
        for op_id, logs in scheduled.items():
            logs.sort(key=lambda lg: int(lg["args"]["index"]))
            a0 = logs[0]["args"]
            ready_at = int(self.chain.call(tl.functions.getTimestamp(op_id)))
            if ready_at == 0:
                status = "cancelled"
            elif ready_at == 1:  # OpenZeppelin's _DONE_TIMESTAMP
                status = "done"
            else:
                status = "ready" if now >= ready_at else "pending"
            targets: list[str] = [to_checksum_address(lg["args"]["target"]) for lg in logs]
            payloads = [bytes(lg["args"]["data"]) for lg in logs]
            out.append(Operation(
                id=op_id, targets=targets, values=[int(lg["args"]["value"]) for lg in logs],
                payloads=payloads, predecessor=bytes(a0["predecessor"]),
                salt=salts.get(op_id, ZERO32),
                ready_at=ready_at if ready_at > 1 else 0,
                status=status, calls=[self.describe(t, d) for t, d in zip(targets, payloads, strict=True)],
                scheduled_tx="0x" + bytes(logs[0]["transactionHash"]).hex(),
            ))  # fmt: skip
        return out

    def operation(self, op_id: bytes) -> Operation:
        for op in self.operations():
            if op.id == op_id:
                return op
        raise LedgerError(f"no operation 0x{op_id.hex()} was scheduled in the timelock "
                          f"{self._timelock().address}")

    # -- acting ---------------------------------------------------------------------------
    def submit(self, calls: list[Call], *, at_once: bool = False) -> Submitted:
        """Execute `calls` now (no timelock, or `at_once`: the sender itself holds the role the
        calls need) or schedule them as one operation."""
        if not calls:
            raise ValueError("no admin calls to submit")
        shown = [self.describe(c.fn.address, c.calldata) for c in calls]
        tl = self.timelock
        if tl is None or at_once:
            receipts = [self.chain.transact(c.fn, self.sender, value=c.value) for c in calls]
            _logger.info("admin: executed %s", "; ".join(shown))
            hashes = ["0x" + bytes(r["transactionHash"]).hex() for r in receipts]
            return Submitted(True, shown, tx_hashes=hashes, receipts=receipts)
        targets: list[str] = [to_checksum_address(c.fn.address) for c in calls]
        values = [c.value for c in calls]
        payloads = [c.calldata for c in calls]
        salt = bytes(keccak(text=f"evidence-escrow admin {time.time_ns()} {self.sender.address}"))
        delay = self.delay
        receipt = self.chain.transact(
            tl.functions.scheduleBatch(targets, values, payloads, ZERO32, salt, delay), self.sender)
        op_id = bytes(self.chain.call(
            tl.functions.hashOperationBatch(targets, values, payloads, ZERO32, salt)))
        ready_at = int(self.chain.call(tl.functions.getTimestamp(op_id)))
        _logger.info("admin: scheduled 0x%s, executable from %d: %s", op_id.hex(), ready_at,
                     "; ".join(shown))
        op = Operation(op_id, targets, values, payloads, ZERO32, salt, ready_at, "pending", shown,
                       "0x" + bytes(receipt["transactionHash"]).hex())
        return Submitted(False, shown, op, [op.scheduled_tx], [receipt])

    def execute(self, op_id: bytes) -> dict[str, Any]:
        """Execute a ready operation (refused, with its time, while it is not ready)."""
        op = self.operation(op_id)
        if op.status != "ready":
            when = f"; executable from unix time {op.ready_at}" if op.status == "pending" else ""
            raise LedgerError(f"operation 0x{op_id.hex()} is {op.status}{when}")
        fn = self._timelock().functions.executeBatch(op.targets, op.values, op.payloads, op.predecessor,
                                                     op.salt)
        return self.chain.transact(fn, self.sender, value=sum(op.values))

    def cancel(self, op_id: bytes) -> dict[str, Any]:
        """Cancel an operation that has not run yet (a proposer's right)."""
        op = self.operation(op_id)
        if op.status not in ("pending", "ready"):
            raise LedgerError(f"operation 0x{op_id.hex()} is {op.status}: nothing to cancel")
        return self.chain.transact(self._timelock().functions.cancel(op_id), self.sender)

    def _timelock(self) -> Contract:
        if self.timelock is None:
            raise LedgerError("this deployment has no admin timelock: admin changes apply at once")
        return self.timelock


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
