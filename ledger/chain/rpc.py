"""Talk to a chain: the embedded py-evm chain, a local anvil, or any JSON-RPC endpoint.

Every transaction is built, signed locally and sent raw, on every kind of chain, so the
same code path runs in tests and in production. Reverts are decoded against the ABIs of
all project contracts (custom errors with their arguments), never parsed from node text,
except for the embedded chain, whose in-process backend only offers the raw revert
bytes inside its exception message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import ChecksumAddress, Hash32
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.types import RPCEndpoint, RPCResponse, TxParams, Wei

from ledger._internal import solc
from ledger.chain.abi import decode_revert, revert_data
from ledger.chain.devtools import ANVIL_CHAIN_ID, DevChainControls
from ledger.chain.fees import TxCost, fresh, tx_cost
from ledger.chain.keys import DEV_ACCOUNTS, dev_keys, load_signer_from_env
from ledger.chain.locks import file_lock
from ledger.errors import ChainUnavailable, ConfigError, ContractRevert, LedgerError

__all__ = ["ANVIL_CHAIN_ID", "Chain", "connect", "embedded", "redacted_url"]

_logger = logging.getLogger(__name__)

EMBEDDED_BLOCK_GAS_LIMIT = 60_000_000
EMBEDDED_GAS_LIMIT = 15_000_000  # per transaction on the embedded chain (see build_signed)


@dataclass
class Chain(DevChainControls):
    """A connected chain with local signers."""

    w3: Web3
    accounts: list[LocalAccount]
    kind: str  # "embedded" | "anvil" | "rpc"
    confirmations: int = 1
    url: str | None = None
    client: str | None = None  # the node's client version (web3_clientVersion)
    tester: Any = None  # eth_tester.EthereumTester for the embedded chain
    poll_interval: float = 0.05
    timeout: float = 120.0  # seconds a transaction may take to be mined and confirmed
    max_fee: int | None = None  # wei: the ceiling any transaction (a replacement too) may bid
    lock_dir: Path | None = None  # where per-key nonce locks live (shared by every process)
    progress: Callable[[str], None] | None = None  # told how a wait is going
    #: the nonces of a sender that stored, unsettled transactions hold (set by an outbox's
    #: journal), skipped by every transaction this chain signs
    held_nonces: Callable[[str], Sequence[int]] = field(default=lambda _: ())
    _nonces: dict[str, int] = field(default_factory=dict)
    _chain_id: int | None = None

    # -- basics ---------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def default_account(self) -> LocalAccount:
        if not self.accounts:
            raise ConfigError(
                "no signing key: set LEDGER_PRIVATE_KEY, or LEDGER_KEYSTORE with "
                "LEDGER_KEYSTORE_PASSWORD (or LEDGER_KEYSTORE_PASSWORD_FILE)"
            )
        return self.accounts[0]

    def describe(self) -> str:
        where = redacted_url(self.url) if self.url else "in-process py-evm"
        return f"{self.kind} chain {self.chain_id} ({where})"

    def contract(self, name: str, address: str) -> Contract:
        art = solc.artifacts()[name]
        return self.w3.eth.contract(address=to_checksum_address(address), abi=art.abi)

    # -- transactions ----------------------------------------------------------
    def _next_nonce(self, address: ChecksumAddress, taken: Iterable[int] = (), *,
                    reserve: bool = True) -> int:
        """The next nonce of `address`: past the node's pending count, this process's last
        one, and `taken` (nonces stored by any process but possibly never broadcast).
        `reserve=False` only looks: `build_signed` reserves the nonce once the call simulated
        and was signed (a refused call must not leave a gap)."""
        chain_nonce = self.pending_nonce(address)
        nonce = max(chain_nonce, self._nonces.get(address, 0), *(n + 1 for n in taken))
        if reserve:
            self._nonces[address] = nonce + 1
        return nonce

    def pending_nonce(self, address: str) -> int:
        """The node's next nonce for `address`, counting the transactions it holds pending."""
        return int(self.w3.eth.get_transaction_count(to_checksum_address(address), "pending"))

    @contextlib.contextmanager
    def nonce_lock(self, address: str) -> Iterator[None]:
        """Hold the per-key lock from choosing a nonce until the signed transaction is stored
        and broadcast: two processes on one key (two CLI commands, a CLI and the service)
        never sign two transactions with one nonce. An exclusive `flock` on
        ``<lock_dir>/<chain id>-<address>.lock``; within one process, a thread lock."""
        with _THREAD_LOCK, file_lock(self.lock_dir, self.say, f"{self.chain_id}-{address.lower()}",
                                           f"another process signing as {address}"):
            yield

    @contextlib.contextmanager
    def run_lock(self, name: str, what: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold ``<lock_dir>/<chain id>-<name>.lock`` for a whole run that must not overlap with
        another process's (deciding, sending and settling an anchor or an escrow step): a
        second run waits, says for `what`, then sees what the first did; without `wait` it
        goes on without the lock. Within one process, a thread lock per name. Yields whether
        the lock is held."""
        local = _RUN_LOCKS.setdefault(name, threading.RLock())
        if not local.acquire(blocking=wait):
            yield False
            return
        depth = _RUN_DEPTH.__dict__.setdefault(name, 0)
        try:
            _RUN_DEPTH.__dict__[name] = depth + 1
            if depth:  # this thread holds it already (the file lock too)
                yield True
                return
            with file_lock(self.lock_dir, self.say, f"{self.chain_id}-{name}", what, wait=wait) as held:
                yield held
        finally:
            _RUN_DEPTH.__dict__[name] = depth
            local.release()

    def confirmed_nonce(self, address: str) -> int:
        """How many transactions of `address` the latest block has mined (its next nonce there)."""
        return int(self.w3.eth.get_transaction_count(to_checksum_address(address), "latest"))

    def known(self, tx_hash: bytes) -> bool:
        """Does the node know this transaction (pending or mined)?"""
        try:
            return self.w3.eth.get_transaction(Hash32(tx_hash)) is not None
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ == "TransactionNotFound":
                return False
            raise self.explain(exc, "transaction lookup") from None

    def next_base_fee(self) -> int:
        """The base fee the next block will charge (the pending block's, where the node says)."""
        for tag in ("pending", "latest"):
            try:
                fee = self.w3.eth.get_block(tag).get("baseFeePerGas")
            except Exception:  # noqa: BLE001 - some nodes have no pending block
                continue
            if fee is not None:
                return int(fee) if tag == "pending" else int(fee) * 9 // 8
        return 0

    def suggested_tip(self) -> int:
        return 10**9 if self.kind != "rpc" else int(self.w3.eth.max_priority_fee)

    def say(self, text: str) -> None:
        _logger.info("%s", text)
        if self.progress is not None:
            self.progress(text)

    def mines_on_demand(self) -> bool:
        """Does this node mine only when a transaction arrives (the embedded chain; anvil with
        automine and no block time)? There, no confirmation ever comes by waiting."""
        if self.kind == "embedded":
            return True
        if self.kind != "anvil":
            return False
        try:
            auto = self.w3.provider.make_request(RPCEndpoint("anvil_getAutomine"), []).get("result")
            interval = self.w3.provider.make_request(RPCEndpoint("anvil_getIntervalMining"), []).get("result")
        except Exception:  # noqa: BLE001
            return False
        return bool(auto) and not interval

    def _fees(self) -> dict[str, int]:
        """Fees for a new transaction: twice the base fee plus the tip, under the ceiling
        `max_fee` (`FeeCeiling`, before anything is signed, if the chain asks for more)."""
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        max_fee, tip = fresh(base, self.suggested_tip(), self.max_fee)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": max_fee}

    def build_signed(
        self,
        fn: Any,
        sender: LocalAccount | None = None,
        *,
        value: int = 0,
        nonce: int | None = None,
        gas: int | None = None,
        context: str | None = None,
    ) -> tuple[bytes, bytes, int]:
        """Estimate, build and sign a contract call. Returns (raw tx, tx hash, nonce).

        Estimation runs the call first, so a revert surfaces here, decoded.
        """
        sender = sender or self.default_account
        params: dict[str, Any] = {"from": sender.address, "value": value, "chainId": self.chain_id}
        if gas is None:
            try:
                if self.kind == "embedded" and hasattr(fn, "call"):
                    # py-evm estimates by binary search (about 14 executions per call);
                    # one eth_call surfaces a revert just as well, and the in-process dev
                    # chain can afford a generous limit (only the gas used is charged).
                    # Deployments (no `call`) are rare and keep the estimate.
                    fn.call(dict(params), block_identifier="pending")
                    gas = EMBEDDED_GAS_LIMIT
                elif self.kind == "embedded":
                    gas = int(fn.estimate_gas(params))  # eth-tester estimates on pending only
                else:
                    # Simulated on the pending block: its time is the next block's, so a
                    # deadline that passes (or a time set with set_next_timestamp) counts.
                    gas = int(fn.estimate_gas(params, block_identifier="pending"))
                    gas = gas + gas // 5 + 5_000
            except Exception as exc:  # noqa: BLE001 - decoded below or re-raised
                raise self.explain(exc, context or _fn_label(fn)) from None
        params["gas"] = gas
        params["nonce"] = self._next_nonce(sender.address) if nonce is None else nonce
        params.update(self._fees())
        tx = fn.build_transaction(params)
        signed = sender.sign_transaction(tx)
        self._nonces[sender.address] = max(self._nonces.get(sender.address, 0), params["nonce"] + 1)
        _logger.debug("signed %s from %s: nonce %d, gas %d, value %d, tx 0x%s", context or _fn_label(fn),
                      sender.address, params["nonce"], gas, value, bytes(signed.hash).hex())
        return bytes(signed.raw_transaction), bytes(signed.hash), params["nonce"]

    def broadcast(self, raw: bytes) -> bytes:
        _logger.debug("broadcasting tx 0x%s", bytes(keccak(raw)).hex())
        try:
            return bytes(self.w3.eth.send_raw_transaction(raw))
        except Exception as exc:  # noqa: BLE001
            text = str(exc).lower()
            if "already known" in text or "known transaction" in text:
                return bytes(keccak(raw))
            raise self.explain(exc, "broadcast") from None

    def wait(self, tx_hash: bytes, confirmations: int | None = None, timeout: float | None = None,
             ) -> dict[str, Any]:
        """Wait until mined with `confirmations` blocks on top of (and including) its own.

        Re-checks that the receipt's block is still canonical, so a reorg that drops the
        transaction is never reported as confirmed. Reports progress (`say`); on a node that
        mines only on demand, mines the blocks the confirmations need, and says so.
        """
        receipt = self.await_receipts([tx_hash], confirmations, timeout)
        if receipt is None:
            known = self.known(tx_hash)
            raise ChainUnavailable(
                f"transaction 0x{tx_hash.hex()} not confirmed within {self._limit(timeout):.0f}s on "
                f"{self.describe()}: the node {'holds it pending' if known else 'does not know it'}. "
                + ("It may still be mined: wait longer (--timeout), or check it once mined (`ledger trace "
                   f"0x{tx_hash.hex()}`) before running the command again, which sends another transaction"
                   if known else "Running the command again sends it anew"))
        return receipt

    def _limit(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def await_receipts(self, hashes: Sequence[bytes], confirmations: int | None = None,
                       timeout: float | None = None, *, stop: Callable[[], bool] | None = None,
                       ) -> dict[str, Any] | None:
        """The receipt of whichever of `hashes` is mined, once it has `confirmations` on a
        canonical block; None when `timeout` passes first, or as soon as `stop()` says so
        while none is mined (the caller then replaces or abandons the transaction)."""
        need = self.confirmations if confirmations is None else confirmations
        start = time.monotonic()
        said = ""
        while True:
            receipt = next((r for r in map(self.receipt, hashes) if r is not None), None)
            head = int(self.w3.eth.block_number)
            if receipt is not None:
                block = int(receipt["blockNumber"])
                have = head - block + 1
                canonical = bytes(self.w3.eth.get_block(block)["hash"]) == bytes(receipt["blockHash"])
                if canonical and have >= need:
                    return dict(receipt)
                if canonical and self.mines_on_demand():
                    self.mine(need - have)
                    self.say(f"tx 0x{bytes(receipt['transactionHash']).hex()[:12]}…: the node mines on "
                             f"demand; mined {need - have} empty block(s) for {need} confirmation(s)")
                    continue
                note = (f"mined in block {block}: {have}/{need} confirmations" if canonical
                        else f"its block {block} was reorganised away; waiting for it to be mined again")
            else:
                if stop is not None and stop():
                    return None
                note = f"pending (head block {head})"
            waited = time.monotonic() - start
            if note != said:
                self.say(f"tx 0x{hashes[0].hex()[:12]}…: {note} ({waited:.0f}s)")
                said = note
            if waited > self._limit(timeout):
                return None
            time.sleep(self.poll_interval)

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        """The transaction's receipt, or None while the node knows no mined transaction of that hash."""
        try:
            return dict(self.w3.eth.get_transaction_receipt(Hash32(tx_hash)))
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ in ("TransactionNotFound",):
                return None
            raise self.explain(exc, "receipt lookup") from None

    def cost(self, receipt: dict[str, Any]) -> TxCost:
        """What a mined transaction cost (`ledger.chain.fees.tx_cost`; the transaction and its
        block are read only when the receipt lacks ``effectiveGasPrice``)."""
        if receipt.get("effectiveGasPrice") is not None:
            return tx_cost(receipt)
        tx_hash = Hash32(bytes(receipt["transactionHash"]))
        return tx_cost(receipt, self.w3.eth.get_transaction(tx_hash),
                       self.w3.eth.get_block(int(receipt["blockNumber"])))

    def send(
        self,
        fn: Any,
        sender: LocalAccount | None = None,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
    ) -> dict[str, Any]:
        """Build, sign, broadcast and await a contract call: its receipt, whatever its status.

        For calls nobody needs to resume after a crash; the platform's steps and anchors go
        through `ledger.chain.outbox` instead, which stores the signed bytes first.
        """
        sender = sender or self.default_account
        with self.nonce_lock(sender.address):  # as the outbox signs: one nonce, one transaction
            nonce = self._next_nonce(sender.address, self.held_nonces(sender.address), reserve=False)
            raw, tx_hash, _ = self.build_signed(fn, sender, value=value, gas=gas, nonce=nonce,
                                                context=_fn_label(fn))
            self.broadcast(raw)
        return self.wait(tx_hash, confirmations)

    def transact(
        self,
        fn: Any,
        sender: LocalAccount | None = None,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
    ) -> dict[str, Any]:
        """`send`, then raise the decoded error (`ContractRevert`) if the call reverted."""
        receipt = self.send(fn, sender, value=value, gas=gas, confirmations=confirmations)
        if receipt["status"] != 1:
            raise self.failure(bytes(receipt["transactionHash"]), _fn_label(fn))
        return receipt

    def simulate(self, raw: bytes, label: str) -> None:
        """Run a stored signed transaction's call on the pending block; raises its decoded
        error if it would revert now."""
        from eth_account import Account as _Account
        from eth_account.typed_transactions.typed_transaction import TypedTransaction
        from hexbytes import HexBytes

        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        call: TxParams = {"from": _Account.recover_transaction(raw), "to": to_checksum_address(tx["to"]),
                          "data": HexBytes(tx["data"]), "value": Wei(int(tx["value"]))}
        try:
            self.w3.eth.call(call, block_identifier="pending")
        except Exception as exc:  # noqa: BLE001 - decoded below
            raise self.explain(exc, label) from None

    def failure(self, tx_hash: bytes, label: str) -> LedgerError:
        """Why a mined transaction reverted: its own revert data where the node can trace it,
        else a re-run of it at the parent block (whose time may differ from the mined block's)."""
        data = self.revert_data(tx_hash)
        if data is not None:
            return decode_revert(data, label)
        tx = self.w3.eth.get_transaction(Hash32(tx_hash))
        call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
        try:
            self.w3.eth.call(call, block_identifier=int(tx["blockNumber"] or 1) - 1)
        except Exception as exc:  # noqa: BLE001 - decoded below
            err = self.explain(exc, label)
            if isinstance(err, ContractRevert):
                err.args = (f"{err} (re-run at the parent block)",)
            return err
        return ContractRevert(
            "Unknown", {}, f"{label} reverted on chain; re-run at the parent block it succeeds "
            "(it depended on the mined block's time or state, or ran out of gas)"
        )

    def revert_data(self, tx_hash: bytes) -> bytes | None:
        """The revert data of a mined, failed transaction, from the node's call tracer
        (anvil and geth-compatible nodes); None where the node cannot trace."""
        if self.kind == "embedded":
            return None
        try:
            res = self.w3.provider.make_request(
                RPCEndpoint("debug_traceTransaction"), ["0x" + tx_hash.hex(), {"tracer": "callTracer"}])
        except Exception:  # noqa: BLE001 - tracing is optional
            return None
        out = (res.get("result") or {}).get("output")
        if not isinstance(out, str) or not out.startswith("0x") or "error" not in res.get("result", {}):
            return None
        return bytes.fromhex(out[2:])

    def send_eth(self, to: str, amount: int, sender: LocalAccount | None = None) -> dict[str, Any]:
        """A plain value transfer, signed locally and awaited."""
        sender = sender or self.default_account
        with self.nonce_lock(sender.address):
            tx: TransactionDictType = {
                "to": to_checksum_address(to), "value": amount, "gas": 21_000, "chainId": self.chain_id,
                "nonce": self._next_nonce(sender.address, self.held_nonces(sender.address)), **self._fees(),
            }
            tx_hash = self.broadcast(bytes(sender.sign_transaction(tx).raw_transaction))
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            raise LedgerError(f"transfer of {amount} wei to {to} failed")
        return receipt

    def call(self, fn: Any, sender: LocalAccount | None = None, *, block: Any = None) -> Any:
        """A read-only call; `block` (number, or "latest"/"pending") reads historical state."""
        params = {"from": (sender or self.default_account).address} if self.accounts else {}
        try:
            if block is None:
                return fn.call(params)
            return fn.call(params, block_identifier=block)
        except Exception as exc:  # noqa: BLE001
            raise self.explain(exc, _fn_label(fn)) from None

    def deploy(self, name: str, *args: Any, sender: LocalAccount | None = None) -> Contract:
        contract, _ = self.deploy_with_receipt(name, *args, sender=sender)
        return contract

    def deploy_with_receipt(
        self, name: str, *args: Any, sender: LocalAccount | None = None
    ) -> tuple[Contract, dict[str, Any]]:
        art = solc.artifacts()[name]
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self.transact(factory.constructor(*args), sender)
        address = receipt["contractAddress"]
        return self.w3.eth.contract(address=address, abi=art.abi), receipt

    def explain(self, exc: BaseException, context: str) -> LedgerError:
        """What a provider exception means, as a `LedgerError`: a decoded revert, an unreachable
        node, or the provider's own message; `context` names the step."""
        if isinstance(exc, LedgerError):
            return exc
        data = revert_data(exc)
        if data is not None:
            return decode_revert(data, context)
        if isinstance(exc, (ConnectionError, OSError)) or "connection" in type(exc).__name__.lower():
            return ChainUnavailable(f"{context}: no answer from {self.describe()}: {exc}")
        return LedgerError(f"{context} failed: {exc}")


_THREAD_LOCK = threading.RLock()
_RUN_LOCKS: dict[str, threading.RLock] = {}  # per run-lock name, within this process
_RUN_DEPTH = threading.local()  # per run-lock name: how deep this thread holds it


def _fn_label(fn: Any) -> str:
    name = getattr(fn, "fn_name", None) or getattr(fn, "abi_element_identifier", None)
    if name is None and type(fn).__name__ == "ContractConstructor":
        return "deploy"
    return str(name or "call")


def embedded(accounts: int = DEV_ACCOUNTS, *, genesis_timestamp: int | None = None) -> Chain:
    """A fresh in-process py-evm chain with funded dev accounts.

    `genesis_timestamp` starts the chain's clock in the past (for replays at original
    times); later blocks then follow `set_next_timestamp`, or the wall clock.
    """
    from eth_tester import EthereumTester, PyEVMBackend
    from web3.providers.eth_tester import EthereumTesterProvider

    overrides: dict[str, Any] = {"gas_limit": EMBEDDED_BLOCK_GAS_LIMIT}
    if genesis_timestamp is not None:
        overrides["timestamp"] = genesis_timestamp
    backend = PyEVMBackend(PyEVMBackend.generate_genesis_params(overrides=overrides))
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    keys = backend.account_keys[:accounts]
    signers = [Account.from_key(k.to_bytes()) for k in keys]
    return Chain(w3=w3, accounts=signers, kind="embedded", confirmations=1, tester=tester, poll_interval=0)


class _NodeProvider(HTTPProvider):
    """An HTTP provider for which a node that stops answering is `ChainUnavailable`, with a
    hint, whichever call it was: a raw requests error reached the user as a traceback, or as
    "Connection reset by peer" with nothing to do about it."""

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except OSError as exc:  # requests' errors are OSErrors: refused, reset, timed out, …
            raise ChainUnavailable(
                f"the node at {redacted_url(str(self.endpoint_uri))} stopped answering during "
                f"{method} ({_os_reason(exc)}): check that it is running (`ledger node`, or the "
                "node of --rpc / LEDGER_RPC)"
            ) from None


def _os_reason(exc: BaseException) -> str:
    """The operating system's (or http.client's) words for a failed request, such as
    "Connection reset by peer", found in the exception's chain; never the text of requests'
    or urllib3's own errors, which carries the URL."""
    seen: list[BaseException] = [exc]
    for e in seen:
        if isinstance(e, OSError) and e.strerror:
            return str(e.strerror)
        if type(e).__module__ in ("builtins", "http.client", "socket", "ssl") and str(e):
            return str(e)
        links = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        seen += [x for x in links if isinstance(x, BaseException) and x not in seen]
    return "timed out" if "Timeout" in type(exc).__name__ else type(exc).__name__


def connect(
    url: str,
    *,
    confirmations: int | None = None,
    signers: Iterable[LocalAccount] | None = None,
    timeout: float = 120.0,
) -> Chain:
    """Connect to a JSON-RPC endpoint. On a local anvil the dev accounts sign by default."""
    w3 = Web3(_NodeProvider(url, request_kwargs={"timeout": 30}))
    try:
        chain_id = int(w3.eth.chain_id)
        client = str(w3.client_version)
    except Exception as exc:  # noqa: BLE001
        raise ChainUnavailable(
            f"no Ethereum JSON-RPC node answers at {redacted_url(url)} ({type(exc).__name__}).\n"
            "Start a local one with `ledger node` (anvil, state kept in the data directory), "
            "or pass --rpc URL of a running node."
        ) from None
    # a development anvil: anvil's client and its default chain id (ledger.chain.devtools says why both)
    is_anvil = "anvil" in client.lower() and chain_id == ANVIL_CHAIN_ID
    chosen = list(signers) if signers is not None else []
    if not chosen:
        operator = load_signer_from_env()
        if operator is not None:
            chosen = [operator]
        elif is_anvil:
            chosen = dev_keys()
    chain = Chain(
        w3=w3,
        accounts=chosen,
        kind="anvil" if is_anvil else "rpc",
        confirmations=confirmations if confirmations is not None else (1 if is_anvil else 3),
        url=url,
        client=client,
        timeout=timeout,
    )
    chain._chain_id = chain_id
    _logger.info("connected to %s (%s; %d signing key(s), %d confirmation(s))", chain.describe(),
                 client, len(chosen), chain.confirmations)
    return chain


def redacted_url(url: str) -> str:
    """`url` without what may be a credential: user info, and a path or query (where hosted
    endpoints put API keys) shown only as '…'."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{rest}"


