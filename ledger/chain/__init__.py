"""Talking to Ethereum: the connection (`rpc`), ABI and error decoding (`abi`), signing keys
(`keys`), the signed-transaction outbox (`outbox`) and a local anvil node (`anvil`)."""
