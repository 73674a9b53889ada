"""Machine-readable data kept inside a published markdown page, invisible to readers.

The page's previous state (MR comment history, wiki rows) is read back from a hidden HTML comment holding
base64 JSON, not from the rendered markdown, so parsing does not depend on how the page looks, and
notebook text cannot fake it: base64 has no ``-->``, and rendered notebook text never holds ``<!--``
(see ``escape``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_BLOCK = re.compile(r"<!-- ds-pipelines:data:(?P<kind>[a-z-]+) (?P<payload>[A-Za-z0-9+/=\s]*?) -->")


def embed(kind: str, data: Any) -> str:
    payload = base64.b64encode(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).decode()
    # Wrapped, so the page source stays readable in editors.
    lines = "\n".join(payload[i : i + 100] for i in range(0, len(payload), 100))
    return f"<!-- ds-pipelines:data:{kind} {lines} -->"


def extract(kind: str, text: str | None) -> Any | None:
    """The last data block of ``kind`` in ``text``; None when there is none or it is damaged."""
    if not text:
        return None
    blocks = [m for m in _BLOCK.finditer(text) if m.group("kind") == kind]
    if not blocks:
        return None
    try:
        return json.loads(base64.b64decode("".join(blocks[-1].group("payload").split()), validate=True))
    except (binascii.Error, ValueError):
        return None

