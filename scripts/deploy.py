#!/usr/bin/env python3
"""Deploy the contracts to a chain and write/refresh its deployment manifest.

usage: python scripts/deploy.py [--rpc URL] [--data-dir DIR] [--redeploy]

The same as `ledger [--data-dir DIR] deploy [--rpc URL] [--redeploy]`: idempotent (a live
deployment whose code matches the current build is recognised and left alone). The signing
key comes from LEDGER_PRIVATE_KEY or an encrypted keystore (LEDGER_KEYSTORE with
LEDGER_KEYSTORE_PASSWORD or LEDGER_KEYSTORE_PASSWORD_FILE); on a local anvil the well-known
development accounts sign.
"""

import argparse
import sys

from ledger.cli.main import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rpc")
    ap.add_argument("--data-dir")
    ap.add_argument("--redeploy", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    argv = (["--data-dir", a.data_dir] if a.data_dir else []) + ["deploy"]
    argv += (["--rpc", a.rpc] if a.rpc else []) + (["--redeploy"] if a.redeploy else [])
    argv += ["--json"] if a.json else []
    sys.exit(main(argv))
