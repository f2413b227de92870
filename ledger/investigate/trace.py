"""Call traces of transactions, decoded against the project's contracts.

`trace_transaction` asks the node for ``debug_traceTransaction`` with the standard
``callTracer`` (anvil and geth-compatible nodes support it) and decodes every call frame:
the function called (by selector, against every project ABI), its arguments, and, for a
frame that reverted, the custom error with its values in plain words.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.types import RPCEndpoint

from ledger._internal import solc
from ledger.chain.abi import abi_type, decode_revert, jsonable
from ledger.chain.rpc import Chain
from ledger.errors import LedgerError


@cache
def _functions() -> dict[bytes, list[tuple[str, str, list[dict[str, Any]]]]]:
    """selector -> [(contract, function, inputs)] across every compiled contract."""
    table: dict[bytes, list[tuple[str, str, list[dict[str, Any]]]]] = {}
    for name, art in sorted(solc.artifacts().items()):
        for item in art.abi:
            if item.get("type") != "function":
                continue
            sig = f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"
            table.setdefault(bytes(keccak(text=sig))[:4], []).append((name, item["name"], item["inputs"]))
    return table


def _decode_frame(frame: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    data = bytes.fromhex(frame.get("input", "0x")[2:])
    to = frame.get("to")
    out: dict[str, Any] = {
        "type": frame.get("type", "CALL"),
        "from": to_checksum_address(frame["from"]),
        "to": to_checksum_address(to) if to else None,
        "contract": names.get(str(to).lower()) if to else None,
        "value": int(frame.get("value", "0x0"), 16),
        "gas_used": int(frame.get("gasUsed", "0x0"), 16),
        "function": None,
        "args": None,
        "error": None,
    }
    candidates = _functions().get(data[:4], []) if len(data) >= 4 else []
    if out["contract"]:
        candidates = [c for c in candidates if c[0] == out["contract"]] or candidates
    for contract, fn, inputs in candidates:
        try:
            values = abi_decode([abi_type(i) for i in inputs], data[4:])
        except Exception:  # noqa: BLE001 - try the next contract with this selector
            continue
        out["contract"] = out["contract"] or contract
        out["function"] = fn
        out["args"] = {i["name"]: jsonable(v) for i, v in zip(inputs, values, strict=True)}
        break
    if out["function"] is None and data:
        out["function"] = f"0x{data[:4].hex()}"
    if frame.get("error"):
        output = bytes.fromhex((frame.get("output") or "0x")[2:])
        err = decode_revert(output, out["function"] or "call")
        out["error"] = {"name": err.error_name, "args": err.error_args, "message": str(err),
                        "node": frame["error"]}
    out["calls"] = [_decode_frame(c, names) for c in frame.get("calls", [])]
    return out


def trace_transaction(chain: Chain, tx_hash: str, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The decoded call tree of a mined transaction. `names` maps addresses to contract names."""
    if chain.receipt(bytes.fromhex(tx_hash.removeprefix("0x"))) is None:
        # anvil traces an unknown hash as an empty run instead of refusing it
        raise LedgerError(f"transaction {tx_hash} is not mined on chain {chain.chain_id}")
    response = chain.w3.provider.make_request(RPCEndpoint("debug_traceTransaction"),
                                              [tx_hash, {"tracer": "callTracer"}])
    if "error" in response:
        message = response["error"].get("message", response["error"])
        raise LedgerError(
            f"the node cannot trace {tx_hash}: {message} (anvil and geth-compatible nodes support "
            "debug_traceTransaction; the embedded chain does not)"
        )
    if names is None:
        names = _known_contracts(chain, response["result"])
    return _decode_frame(response["result"], names)


def _known_contracts(chain: Chain, frame: dict[str, Any]) -> dict[str, str]:
    """Name every address in the trace whose code is one of the project's contracts."""
    found: dict[str, str] = {}
    arts = solc.artifacts()
    stack = [frame]
    while stack:
        f = stack.pop()
        stack.extend(f.get("calls", []))
        to = f.get("to")
        if not to or to.lower() in found:
            continue
        code = bytes(chain.w3.eth.get_code(to_checksum_address(to)))
        for name, art in arts.items():
            if code and art.matches_deployed(code):
                found[to.lower()] = name
                break
    return found


def render_trace(frame: dict[str, Any]) -> Any:
    """A rich Tree of a decoded trace."""
    from rich.markup import escape
    from rich.tree import Tree

    def label(f: dict[str, Any]) -> str:
        who = f["contract"] or f["to"] or "?"
        args = ", ".join(f"{k}={v}" for k, v in (f["args"] or {}).items())
        text = f"[bold]{escape(str(who))}[/bold].{escape(str(f['function']))}({escape(args)})"
        if f["value"]:
            text += f" value={f['value']}"
        text += f" [dim]gas {f['gas_used']:,}[/dim]"
        if f["error"]:
            text += f"\n[red]reverted: {escape(f['error']['message'])}[/red]"
        return text

    def add(node: Any, f: dict[str, Any]) -> None:
        for c in f["calls"]:
            add(node.add(label(c)), c)

    tree = Tree(label(frame))
    add(tree, frame)
    return tree
