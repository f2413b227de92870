"""ABI helpers: custom errors decoded with their values, event logs, JSON forms of ABI values.

Reverts are decoded against the ABIs of every project contract (custom errors with their
arguments and the NatSpec notice that explains them), never parsed from node text, except
for the embedded chain, whose in-process backend only offers the raw revert bytes inside
its exception message (`revert_data`).
"""

from __future__ import annotations

import ast
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from ledger._internal import solc
from ledger.errors import ContractRevert

__all__ = [
    "ERROR_DISPLAY", "abi_type", "decode_log", "decode_revert", "event_topic", "jsonable", "revert_data",
]


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
    if name == "BatchCallFailed":  # EscrowBatcher: the failing call's own error is the diagnosis
        inner = decode_revert(bytes(values[1]), f"{context} (call {values[0]} of the batch)")
        return ContractRevert(inner.error_name, {**inner.error_args, "batchIndex": int(values[0])},
                              str(inner))
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


def revert_data(exc: BaseException) -> bytes | None:
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
