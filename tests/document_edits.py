"""Helpers for tests of the JSON documents (ledger._internal.jsondoc): mutate a document's text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: name -> (how to change the document's text, what the error must say)
Malformed = dict[str, tuple[Callable[[str], str], str]]


def edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[str], str]:
    """A text mutation that parses the document, lets `change` edit it in place, writes it back."""

    def apply(text: str) -> str:
        doc = json.loads(text)
        change(doc)
        return json.dumps(doc)

    return apply
