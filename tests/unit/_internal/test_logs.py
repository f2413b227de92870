"""Logging set-up: levels from -v or LEDGER_LOG_LEVEL, JSON lines, and the secret filter."""

from __future__ import annotations

import json
import logging

import pytest

from ledger._internal import logs


@pytest.mark.parametrize("verbosity,default,level", [
    (0, None, logging.WARNING), (1, None, logging.INFO), (2, None, logging.DEBUG), (5, None, logging.DEBUG),
    (0, "debug", logging.DEBUG), (0, " INFO ", logging.INFO), (1, "error", logging.INFO),
    (0, "nonsense", logging.WARNING),
])
def test_level_for(verbosity: int, default: str | None, level: int) -> None:
    assert logs.level_for(verbosity, default) == level


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("ledger.test", logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_json_lines_carry_time_level_logger_message_and_extra_fields() -> None:
    out = json.loads(logs.JsonFormatter().format(_record("stored %d", 3, order_id="O1")))
    assert out["level"] == "INFO" and out["logger"] == "ledger.test" and out["message"] == "stored 3"
    assert out["order_id"] == "O1" and out["time"].endswith("Z")


def test_secret_filter_blanks_secrets_in_messages_arguments_and_extra_fields() -> None:
    secret = "AB" * 32
    f = logs.SecretFilter([secret, "0x" + "cd" * 32, "short"])
    r = _record("key %s and %s", secret.lower(), "0x" + "CD" * 32, detail=f"x{secret}y")
    assert f.filter(r)
    text = r.getMessage() + r.detail  # type: ignore[attr-defined]
    assert secret.lower() not in text.lower() and "cd" * 32 not in text.lower()
    assert text.count(logs.REDACTED) == 3
    plain = _record("nothing to hide %s", "short")
    assert f.filter(plain) and plain.getMessage() == "nothing to hide short"  # too short to be a key


def test_configure_routes_the_package_logger_only(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        logs.configure(logging.INFO, as_json=True, secrets=["ef" * 32])
        logging.getLogger("ledger.evidence.store").info("with %s", "ef" * 32)
        logging.getLogger("ledger.chain.rpc").debug("not shown at INFO")
        logging.getLogger("web3").warning("not ours")
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["message"] == f"with {logs.REDACTED}"
    finally:  # back to a library's default: nothing but the NullHandler, records propagate
        logger = logging.getLogger(logs.ROOT)
        for h in [h for h in logger.handlers if not isinstance(h, logging.NullHandler)]:
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
