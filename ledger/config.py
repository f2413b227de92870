"""Configuration: every ``LEDGER_*`` environment variable, read here and nowhere else.

`VARIABLES` is the table of them (the README's tables are checked against it); `settings`
reads them into a frozen `Settings`. Secret values never appear in its repr. An empty
variable counts as unset. Values are taken as given: each is validated where it is used
(a master secret by `ledger.evidence.master_secret`, a keystore by `ledger.chain.keys`),
whose errors name the variable, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from ledger.errors import ConfigError

__all__ = ["DEFAULT_DATA_DIR", "VARIABLES", "Settings", "Variable", "settings", "variable"]

DEFAULT_DATA_DIR = Path(".ledger")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it is for, whether its value is a secret."""

    name: str
    help: str
    secret: bool = False
    scope: str = "ledger"  # "ledger": the program; "tests": the test suite and benchmarks

    @property
    def attribute(self) -> str:
        """The `Settings` attribute holding its value: LEDGER_RPC -> rpc."""
        return self.name.removeprefix("LEDGER_").lower()


VARIABLES: tuple[Variable, ...] = (
    Variable("LEDGER_MASTER_SECRET", "32-byte master secret (64 hex): the key that wraps each order's "
             "random key (salts derive from it per record), and the at-rest key for personal fields",
             secret=True),
    Variable("LEDGER_MASTER_SECRET_FILE", "instead: a file (mode 0600) holding the master secret"),
    Variable("LEDGER_DATA_KEY", "optional separate AES-256-GCM key (64 hex) for personal fields",
             secret=True),
    Variable("LEDGER_PRIVATE_KEY", "the platform's signing key (deploy, anchor, relayed escrow steps) on a "
             "real network", secret=True),
    Variable("LEDGER_KEYSTORE", "instead: an encrypted (eth-account/Web3 Secret Storage) keystore "
             "(both set: refused)"),
    Variable("LEDGER_KEYSTORE_PASSWORD", "the keystore's password, and that of every `keystore:` "
             "reference without its own password source", secret=True),
    Variable("LEDGER_KEYSTORE_PASSWORD_FILE", "instead: a file (mode 0600) holding that password"),
    Variable("LEDGER_RPC", "default JSON-RPC URL (else `--rpc`, else the `ledger node` of the data dir)"),
    Variable("LEDGER_CONFIRMATIONS", "blocks a transaction needs on top of its own before it counts "
             "(default 1 on dev chains, 3 elsewhere; `--confirmations`)"),
    Variable("LEDGER_TX_TIMEOUT", "seconds to wait for a transaction to be mined and confirmed (default 120; "
             "`--timeout`); it stays stored for `ledger resume`"),
    Variable("LEDGER_MAX_FEE_GWEI", "the highest max fee per gas any transaction may bid, a replacement "
             "(fee bump) of a stuck one too (default 500; `--max-fee`)"),
    Variable("LEDGER_HOME", "data directory (default `.ledger`): store, deployment manifests, node state"),
    Variable("LEDGER_LOG_LEVEL", "log level when no `-v` is given: DEBUG, INFO, WARNING (default), ERROR"),
    Variable("LEDGER_SOLC", "a native solc 0.8.37 to use instead of solc-js"),
    Variable("LEDGER_ANVIL", "the anvil binary (default: the npm package's, then PATH)"),
    Variable("LEDGER_NODE_MODULES", "where the npm packages are (default `node_modules/` of the project)"),
    Variable("LEDGER_CONTRACTS_DIR", "the Solidity sources (default `contracts/` of the project)"),
    Variable("LEDGER_BUILD_DIR", "the compile cache (default `build/` of the project)"),
    Variable("LEDGER_TEST_CHAINS", "chains the tests run on, comma-separated (default `embedded,anvil`)",
             scope="tests"),
    Variable("LEDGER_REQUIRE_BROWSER", "fail (not skip) the HTML report test without chromium; "
             "`scripts/run test` sets it", scope="tests"),
    Variable("LEDGER_STATEFUL_EXAMPLES", "examples of the stateful escrow test (default 15 on the embedded "
             "chain, 5 on anvil)", scope="tests"),
    Variable("LEDGER_STATEFUL_STEPS", "steps per example of the stateful escrow test (default 40)",
             scope="tests"),
    Variable("LEDGER_STATEFUL_LIVENESS_EVERY", "steps between liveness checks (default 8)", scope="tests"),
    Variable("LEDGER_STATEFUL_SHRINK", "0: report the stateful test's first failure unshrunk (default 1)",
             scope="tests"),
)


@dataclass(frozen=True)
class Settings:
    """The environment's ``LEDGER_*`` values (None when unset or empty)."""

    master_secret: str | None = field(default=None, repr=False)
    master_secret_file: str | None = None
    data_key: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    keystore: str | None = None
    keystore_password: str | None = field(default=None, repr=False)
    keystore_password_file: str | None = None
    rpc: str | None = None
    confirmations: str | None = None
    tx_timeout: str | None = None
    max_fee_gwei: str | None = None
    home: str | None = None
    log_level: str | None = None
    solc: str | None = None
    anvil: str | None = None
    node_modules: str | None = None
    contracts_dir: str | None = None
    build_dir: str | None = None
    test_chains: str | None = None
    require_browser: str | None = None
    stateful_examples: str | None = None
    stateful_steps: str | None = None
    stateful_liveness_every: str | None = None
    stateful_shrink: str | None = None

    @property
    def data_dir(self) -> Path:
        """``LEDGER_HOME``, else `DEFAULT_DATA_DIR`."""
        return Path(self.home) if self.home else DEFAULT_DATA_DIR

    def int_value(self, attribute: str, default: int) -> int:
        """An integer setting, or `default` when unset; a ConfigError naming it when not a number."""
        text = getattr(self, attribute)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"LEDGER_{attribute.upper()} must be an integer, got {text[:20]!r}") from None


assert {v.attribute for v in VARIABLES} == {f.name for f in fields(Settings)}


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of `environ` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return Settings(**{v.attribute: env[v.name] for v in VARIABLES if env.get(v.name)})


def variable(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Any environment variable by name (None when unset or empty): for ``env:VAR`` key
    references, which name a variable of the operator's choosing."""
    env = os.environ if environ is None else environ
    return env.get(name) or None
