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
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable() and "\\" not in text:  # is_plain(), decoding once
            return text
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class UnshowError(ValueError):
    """Text given for bytes holds an escape :func:`unshow` cannot read (a command-line mistake)."""

    def __init__(self, position: int, what: str) -> None:
        self.position = position
        super().__init__(f"{what} at position {position}")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _encode(text: str, offset: int) -> bytes:
    """UTF-8, with the bytes a non-UTF-8 argv carried (surrogateescape) given back as they were."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        bad = safe_text(text[exc.start])
        raise UnshowError(offset + exc.start, f"character {bad} that is not text") from None


def unshow(text: str) -> bytes:
    """Inverse of :func:`show`, for names given on the command line (and tests).

    ``\\xNN`` (two hex digits) is one byte and ``\\\\`` one backslash; any other backslash
    stays as it is (a glob's ``\\*``).  A ``\\x`` without two hex digits raises
    :class:`UnshowError`, never guesses (``\\x4`` is not ``\\x04``).
    """
    if "\\" not in text:
        return _encode(text, 0)
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text.startswith("\\\\", i):
            out.append(0x5C)
            i += 2
        elif ch == "\\" and text.startswith("\\x", i):
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or not _HEX_DIGITS.issuperset(digits):
                raise UnshowError(i, f"bad escape {safe_text(text[i : i + 4])}")
            out.append(int(digits, 16))
            i += 4
        else:
            out += _encode(ch, i)
            i += 1
    return bytes(out)


def safe_text(text: str) -> str:
    """Escape control characters in a message that may quote data (paths, errors).

    A byte a non-UTF-8 path or argument carried (surrogateescape) is shown as that byte, ``\\xNN``.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def label(data: bytes) -> str:
    """:func:`show` for tables and messages, where an empty name must stay visible."""
    return show(data) if data else '""'


def show_path(path: object) -> str:
    """A filesystem path for messages and reports: :func:`show` of its bytes (ESC, non-UTF-8 safe)."""
    import os

    return show(os.fsencode(path))  # type: ignore[arg-type]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 problem", "2 problems", "1,200 group records": a count people read."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
