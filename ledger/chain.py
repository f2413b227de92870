"""Talk to a chain: the embedded py-evm chain, a local anvil, or any JSON-RPC endpoint.

Every transaction is built, signed locally and sent raw, on every kind of chain, so the
same code path runs in tests and in production. Reverts are decoded against the ABIs of
all project contracts (custom errors with their arguments), never parsed from node text,
except for the embedded chain, whose in-process backend only offers the raw revert
bytes inside its exception message.
"""

from __future__ import annotations

import ast
import functools
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import ChecksumAddress, Hash32
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import RPCEndpoint, TxParams

from ledger._internal import solc
from ledger.errors import ChainUnavailable, ConfigError, ContractRevert, LedgerError

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_CHAIN_ID = 31337
DEV_ACCOUNTS = 10
EMBEDDED_BLOCK_GAS_LIMIT = 60_000_000
EMBEDDED_GAS_LIMIT = 15_000_000  # per transaction on the embedded chain (see build_signed)

_PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


def _error_table() -> dict[bytes, tuple[str, list[str], list[str], str]]:
    """4-byte selector -> (error name, argument types, argument names, NatSpec notice)."""
    table: dict[bytes, tuple[str, list[str], list[str], str]] = {}
    for art in solc.artifacts().values():
        notices = art.userdoc.get("errors", {})
        for item in art.abi:
            if item.get("type") != "error":
                continue
            types = [abi_type(i) for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            notice = next((n.get("notice", "") for n in notices.get(sig, [])), "")
            prev = table.get(keccak(text=sig)[:4])
            if prev is not None and prev[3] and not notice:
                continue  # keep the entry that carries the explanation
            table[keccak(text=sig)[:4]] = (item["name"], types, [i["name"] for i in item["inputs"]], notice)
    table[keccak(text="Error(string)")[:4]] = ("Error", ["string"], ["message"], "")
    table[keccak(text="Panic(uint256)")[:4]] = ("Panic", ["uint256"], ["code"], "")
    return table


def abi_type(item: dict[str, Any]) -> str:
    """The canonical type of an ABI input (tuples spelled out), as in a signature."""
    if item["type"].startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def jsonable(v: Any) -> Any:
    """A decoded ABI value (call argument, event or error value) as JSON: bytes as 0x hex,
    addresses checksummed, tuples and mappings recursively."""
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
        return to_checksum_address(v)
    if isinstance(v, Mapping):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    return str(v)


def event_topic(item: dict[str, Any]) -> bytes:
    """topic0 of an ABI event: keccak256 of its signature."""
    return bytes(keccak(text=f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"))


_EVENTS: weakref.WeakKeyDictionary[Contract, dict[bytes, dict[str, Any]]] = weakref.WeakKeyDictionary()


def decode_log(contract: Contract, log: Any) -> tuple[str, dict[str, Any]] | None:
    """(event name, arguments) of a log emitted by `contract`, or None if not one of its events."""
    from web3._utils.events import get_event_data

    if not log["topics"]:
        return None
    events = _EVENTS.get(contract)
    if events is None:  # once per contract object: topic0 -> event ABI
        abi = cast(list[dict[str, Any]], contract.abi)
        events = {event_topic(i): i for i in abi if i.get("type") == "event"}
        _EVENTS[contract] = events
    item = events.get(bytes(log["topics"][0]))
    if item is None:
        return None
    return str(item["name"]), dict(get_event_data(contract.w3.codec, item, log)["args"])


_ERRORS: dict[bytes, tuple[str, list[str], list[str], str]] | None = None

#: error name -> function giving display values for its arguments (e.g. enum names for
#: numbers); modules that know a contract's types register here.
ERROR_DISPLAY: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def decode_revert(data: bytes, context: str = "transaction") -> ContractRevert:
    """Turn raw revert data into a ContractRevert naming the custom error and its values."""
    global _ERRORS
    if _ERRORS is None:
        _ERRORS = _error_table()
    if len(data) < 4:
        return ContractRevert("Unknown", {}, f"{context} reverted without a reason")
    entry = _ERRORS.get(data[:4])
    if entry is None:
        return ContractRevert(
            "Unknown", {"data": "0x" + data.hex()}, f"{context} reverted with unknown error 0x{data.hex()}"
        )
    name, types, names, notice = entry
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # noqa: BLE001 - malformed revert data is itself the diagnosis
        return ContractRevert(name, {}, f"{context} reverted with malformed {name} data")
    args = {n: _arg_value(t, v) for n, t, v in zip(names, types, values, strict=True)}
    if name == "Panic":
        code = int(values[0])
        return ContractRevert(name, args, f"{context} panicked: {_PANIC_CODES.get(code, hex(code))}")
    if name == "Error":
        return ContractRevert(name, args, f"{context} reverted: {values[0]}")
    shown = ", ".join(f"{k}={v}" for k, v in ERROR_DISPLAY.get(name, dict)(args).items())
    plain = _plain(notice)
    if plain:
        return ContractRevert(name, args, f"{context} reverted: {plain} [{name}({shown})]")
    return ContractRevert(name, args, f"{context} reverted: {name}({shown})")


def _arg_value(type_: str, v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if type_ == "address":
        return to_checksum_address(v)
    return v


def _plain(notice: str) -> str:
    """'Thrown when a tracking hash was reused.' -> 'a tracking hash was reused'."""
    text = " ".join(notice.split()).rstrip(".")
    for prefix in ("Thrown when ", "Thrown if ", "Thrown on "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _revert_data(exc: BaseException) -> bytes | None:
    """Raw revert bytes from whatever the provider raised, or None if not a revert."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes):
        return data
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        return bytes.fromhex(data["data"][2:])
    # eth-tester (embedded only): TransactionFailed("execution reverted: b'...'")
    if type(exc).__name__ == "TransactionFailed" and exc.args:
        msg = exc.args[0]
        if isinstance(msg, bytes):
            return msg
        prefix = "execution reverted: "
        if isinstance(msg, str) and msg.startswith(prefix):
            literal = msg[len(prefix) :]
            try:
                value = ast.literal_eval(literal)
            except (ValueError, SyntaxError):
                return literal.encode()
            return value if isinstance(value, bytes) else str(value).encode()
        return b""
    return None


@dataclass
class Chain:
    """A connected chain with local signers."""

    w3: Web3
    accounts: list[LocalAccount]
    kind: str  # "embedded" | "anvil" | "rpc"
    confirmations: int = 1
    url: str | None = None
    tester: Any = None  # eth_tester.EthereumTester for the embedded chain
    poll_interval: float = 0.05
    timeout: float = 120.0
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
        where = self.url or "in-process py-evm"
        return f"{self.kind} chain {self.chain_id} ({where})"

    def contract(self, name: str, address: str) -> Contract:
        art = solc.artifacts()[name]
        return self.w3.eth.contract(address=to_checksum_address(address), abi=art.abi)

    # -- transactions ----------------------------------------------------------
    def _next_nonce(self, address: ChecksumAddress) -> int:
        chain_nonce = int(self.w3.eth.get_transaction_count(address, "pending"))
        nonce = max(chain_nonce, self._nonces.get(address, 0))
        self._nonces[address] = nonce + 1
        return nonce

    def _fees(self) -> dict[str, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tip = 10**9 if self.kind != "rpc" else int(self.w3.eth.max_priority_fee)
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

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
                raise self._translate(exc, context or _fn_label(fn)) from None
        params["gas"] = gas
        params["nonce"] = self._next_nonce(sender.address) if nonce is None else nonce
        params.update(self._fees())
        tx = fn.build_transaction(params)
        signed = sender.sign_transaction(tx)
        return bytes(signed.raw_transaction), bytes(signed.hash), params["nonce"]

    def broadcast(self, raw: bytes) -> bytes:
        try:
            return bytes(self.w3.eth.send_raw_transaction(raw))
        except Exception as exc:  # noqa: BLE001
            text = str(exc).lower()
            if "already known" in text or "known transaction" in text:
                return bytes(keccak(raw))
            raise self._translate(exc, "broadcast") from None

    def wait(self, tx_hash: bytes, confirmations: int | None = None) -> dict[str, Any]:
        """Wait until mined with `confirmations` blocks on top of (and including) its own.

        Re-checks that the receipt's block is still canonical, so a reorg that drops the
        transaction is never reported as confirmed.
        """
        need = self.confirmations if confirmations is None else confirmations
        deadline = time.monotonic() + self.timeout
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                block = int(receipt["blockNumber"])
                head = int(self.w3.eth.block_number)
                if head - block + 1 >= need:
                    canonical = self.w3.eth.get_block(block)
                    if bytes(canonical["hash"]) == bytes(receipt["blockHash"]):
                        return dict(receipt)
            if time.monotonic() > deadline:
                raise ChainUnavailable(
                    f"transaction 0x{tx_hash.hex()} not confirmed ({need} confirmations) "
                    f"within {self.timeout:.0f}s on {self.describe()}"
                )
            time.sleep(self.poll_interval)

    def _receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(Hash32(tx_hash)))
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ in ("TransactionNotFound",):
                return None
            raise self._translate(exc, "receipt lookup") from None

    def transact(
        self,
        fn: Any,
        sender: LocalAccount | None = None,
        *,
        value: int = 0,
        gas: int | None = None,
        confirmations: int | None = None,
    ) -> dict[str, Any]:
        """Send a contract call and wait for it; raises ContractRevert (decoded) on failure."""
        label = _fn_label(fn)
        raw, tx_hash, _ = self.build_signed(fn, sender, value=value, gas=gas, context=label)
        self.broadcast(raw)
        receipt = self.wait(tx_hash, confirmations)
        if receipt["status"] != 1:
            raise self.failure(tx_hash, label)
        return receipt

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
            err = self._translate(exc, label)
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
        tx: TransactionDictType = {
            "to": to_checksum_address(to), "value": amount, "gas": 21_000, "chainId": self.chain_id,
            "nonce": self._next_nonce(sender.address), **self._fees(),
        }
        receipt = self.wait(self.broadcast(bytes(sender.sign_transaction(tx).raw_transaction)))
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
            raise self._translate(exc, _fn_label(fn)) from None

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

    def _translate(self, exc: BaseException, context: str) -> LedgerError:
        if isinstance(exc, LedgerError):
            return exc
        data = _revert_data(exc)
        if data is not None:
            return decode_revert(data, context)
        if isinstance(exc, (ConnectionError, OSError)) or "connection" in type(exc).__name__.lower():
            return ChainUnavailable(f"{context}: no answer from {self.describe()}: {exc}")
        return LedgerError(f"{context} failed: {exc}")

    # -- time and state (dev chains) --------------------------------------------
    def timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def time_travel(self, seconds: int) -> None:
        """Advance chain time by `seconds` and mine a block (embedded and anvil only)."""
        if self.kind == "embedded":
            # eth-tester's own time_travel lands one second short; mine the exact time.
            self.set_next_timestamp(self.timestamp() + seconds)
            self.tester.mine_blocks(1)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
            self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        else:
            raise ConfigError("time travel needs the embedded chain or anvil")

    def set_next_timestamp(self, timestamp: int) -> None:
        """Make the next block (the next transaction's, auto-mined) carry `timestamp`.

        It must be later than the latest block's. Embedded chain and anvil only.
        """
        latest = self.timestamp()
        if timestamp <= latest:
            raise ConfigError(f"next block time {timestamp} must be after the latest block's {latest}")
        if self.kind == "embedded":
            chain = self.tester.backend.chain
            chain.header = chain.header.copy(timestamp=timestamp)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [timestamp])
        else:
            raise ConfigError("setting block times needs the embedded chain or anvil")

    def mine(self, blocks: int = 1) -> None:
        if self.kind == "embedded":
            self.tester.mine_blocks(blocks)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])
        else:
            raise ConfigError("mining on demand needs the embedded chain or anvil")

    def snapshot(self) -> Any:
        if self.kind == "embedded":
            return self.tester.take_snapshot()
        if self.kind == "anvil":
            return self.w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
        raise ConfigError("snapshots need the embedded chain or anvil")

    def revert_to(self, snapshot: Any) -> None:
        self._nonces.clear()
        if self.kind == "embedded":
            self.tester.revert_to_snapshot(snapshot)
        elif self.kind == "anvil":
            self.w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])
        else:
            raise ConfigError("snapshots need the embedded chain or anvil")


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


def dev_keys(count: int = DEV_ACCOUNTS) -> list[LocalAccount]:
    """anvil's well-known development accounts (public test mnemonic: never hold value)."""
    return [dev_key(i) for i in range(count)]


@functools.cache
def dev_key(index: int) -> LocalAccount:
    """anvil's development account `index` (derived from its public test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return cast(LocalAccount, account)


def load_signer_from_env(env: dict[str, str] | None = None) -> LocalAccount | None:
    """The operator key from LEDGER_PRIVATE_KEY or an encrypted keystore; never logged."""
    env = dict(os.environ if env is None else env)
    key = env.get("LEDGER_PRIVATE_KEY")
    if key:
        try:
            return cast(LocalAccount, Account.from_key(key))
        except Exception:  # noqa: BLE001 - never echo the key back
            raise ConfigError("LEDGER_PRIVATE_KEY is not a valid private key") from None
    keystore = env.get("LEDGER_KEYSTORE")
    if not keystore:
        return None
    password = env.get("LEDGER_KEYSTORE_PASSWORD")
    pw_file = env.get("LEDGER_KEYSTORE_PASSWORD_FILE")
    if password is None and pw_file:
        try:
            password = Path(pw_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read keystore password file {pw_file}: {exc.strerror}") from None
    if password is None:
        raise ConfigError(
            "LEDGER_KEYSTORE is set but neither LEDGER_KEYSTORE_PASSWORD nor "
            "LEDGER_KEYSTORE_PASSWORD_FILE is"
        )
    try:
        encrypted = Path(keystore).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {keystore}: {exc.strerror}") from None
    try:
        return cast(LocalAccount, Account.from_key(Account.decrypt(encrypted, password)))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"cannot decrypt keystore {keystore}: wrong password or corrupt file") from None


def connect(
    url: str,
    *,
    confirmations: int | None = None,
    signers: Iterable[LocalAccount] | None = None,
    timeout: float = 120.0,
) -> Chain:
    """Connect to a JSON-RPC endpoint. On a local anvil the dev accounts sign by default."""
    from web3 import HTTPProvider

    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    try:
        chain_id = int(w3.eth.chain_id)
        client = str(w3.client_version)
    except Exception as exc:  # noqa: BLE001
        raise ChainUnavailable(
            f"no Ethereum JSON-RPC node answers at {url} ({type(exc).__name__}).\n"
            "Start a local one with `ledger node` (anvil, state kept in the data directory), "
            "or pass --rpc URL of a running node."
        ) from None
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
        timeout=timeout,
    )
    chain._chain_id = chain_id
    return chain


def resolve_signer(ref: str, chain: Chain | None = None, env: dict[str, str] | None = None) -> LocalAccount:
    """A signing key from a reference, never from a literal key on the command line.

    ``dev:N``        the N-th well-known development account (embedded chain or local anvil)
    ``env:VAR``      a private key (hex) in the environment variable VAR
    ``keystore:PATH`` an encrypted eth-account keystore; its password comes from
                     LEDGER_KEYSTORE_PASSWORD or LEDGER_KEYSTORE_PASSWORD_FILE
    """
    env = dict(os.environ if env is None else env)
    kind, _, arg = ref.partition(":")
    if kind == "dev":
        if chain is not None and chain.kind not in ("embedded", "anvil"):
            raise ConfigError(f"{ref}: development accounts exist only on the embedded chain or anvil")
        try:
            n = int(arg)
        except ValueError:
            raise ConfigError(f"{ref}: expected dev:N with N a number") from None
        if chain is not None and 0 <= n < len(chain.accounts) and chain.kind == "embedded":
            return chain.accounts[n]
        if not 0 <= n < 100:
            raise ConfigError(f"{ref}: N must be 0..99")
        return dev_key(n)
    if kind == "env":
        key = env.get(arg)
        if not key:
            raise ConfigError(f"{ref}: environment variable {arg} is not set")
        try:
            return cast(LocalAccount, Account.from_key(key))
        except Exception:  # noqa: BLE001 - never echo the key
            raise ConfigError(f"{ref}: {arg} does not hold a valid private key") from None
    if kind == "keystore":
        signer = load_signer_from_env({**env, "LEDGER_KEYSTORE": arg, "LEDGER_PRIVATE_KEY": ""})
        assert signer is not None
        return signer
    raise ConfigError(f"unknown key reference {ref!r}: use dev:N, env:VAR or keystore:PATH")
