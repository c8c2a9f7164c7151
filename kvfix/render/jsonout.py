"""JSON output helpers: bytes as (text, hex) pairs, streamed writing."""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from kvfix.textsafe import show


def text_and_hex(prefix: str, data: bytes) -> dict[str, str]:
    return {prefix: show(data), f"{prefix}_hex": data.hex()}


def dump(obj: Any, out: IO[str] | None = None) -> None:
    """Write JSON incrementally (json.dump streams chunks), ending with a newline."""
    out = out or sys.stdout
    json.dump(obj, out, indent=2, ensure_ascii=False)
    out.write("\n")
