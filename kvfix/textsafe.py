"""Show arbitrary bytes losslessly and safely: no control byte or markup reaches a terminal.

Printable UTF-8 is shown as it is; anything else is escaped byte by byte (``\\xNN``,
with ``\\`` doubled), so the shown text maps back to exactly one byte string.  Rich
output must still wrap the result in ``rich.text.Text`` so ``[red]`` stays literal.
"""

from __future__ import annotations


def is_plain(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable() and "\\" not in text


def show(data: bytes) -> str:
    if is_plain(data):
        return data.decode("utf-8")
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unshow(text: str) -> bytes:
    """Inverse of :func:`show` (used by tests and by name arguments on the command line)."""
    if "\\" not in text:
        return text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text.startswith("\\\\", i):
            out.append(0x5C)
            i += 2
        elif ch == "\\" and text.startswith("\\x", i):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out.extend(ch.encode("utf-8"))
            i += 1
    return bytes(out)


def safe_text(text: str) -> str:
    """Escape control characters in a message that may quote data (paths, errors)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def label(data: bytes) -> str:
    """:func:`show` for tables and messages, where an empty name must stay visible."""
    return show(data) if data else '""'
