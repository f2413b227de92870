"""evidence-escrow: provable live-commerce evidence, a fulfilment escrow, and the tools to check both.

The package, by layer (an import only ever points down this list; a test enforces it):

``ledger.cli``          the `ledger` command: one entry point, one module per group of commands
``ledger.dev``          development aids: the flash-sale generator, the escrow sandbox, the demo
``ledger.investigate``  audit reports, case files and replays, call traces
``ledger.deploy``       deploying the contracts and the per-chain deployment manifest
``ledger.escrow``       the fulfilment escrow: types, EIP-712 messages, calls, client, platform
``ledger.evidence``     the evidence log: record -> leaf -> tree -> anchored head -> bundle
``ledger.chain``        talking to Ethereum: RPC, ABI and error decoding, keys, the outbox, anvil
``ledger._internal``    canonical JSON, Merkle trees, the compiler, time, logging set-up
``ledger.config``       every LEDGER_* environment variable
``ledger.errors``       one error root

docs/architecture.md shows the data path and the money path through these packages. The
Python API is not yet stable: import paths may change between releases.
"""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
