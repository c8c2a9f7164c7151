"""Fitting a table to a terminal's width without splitting what must stay whole.

:func:`fit` lays a table out for ``width`` columns of terminal cells and returns the lines of
every cell, each no wider than its column, for a renderer that draws boxes around them
(rich, :mod:`kvfix.render.document`).  Cells break at spaces, after ``..`` (``7-1..7-9``
breaks between the two ids) and, in words holding letters, after ``/ = , ;``.  A piece
without letters holding a digit (an id like ``1700000000000-0``, a number, a count like
``2/2/3``, a size like ``1,234``) is never split nor shortened: its column is at least
that wide.  A longer name is shortened in the middle (``very-lo…-name``: the bytes are in
``--format json`` and ``kvfix inspect``); hex is folded over lines, since it is read whole.

When the columns' natural widths do not fit:

1. columns holding one value in every row (two rows or more) leave the table for a line
   under it (``same in every row: namespace __namespace``): nothing is lost;
2. when the rest still does not fit at its narrowest, the table is cut into several, each
   repeating the leftmost columns that tell the rows apart (as R prints a wide data frame);
3. each table's spare width goes first to the columns that need little to be shown whole,
   then to the others (free text) in proportion to what they lack.

Pure text in, text out; no rich objects, so the layout is testable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from rich.cells import cell_len, chop_cells, split_graphemes

ELLIPSIS = "…"

#: Names up to this wide are never shortened merely to avoid cutting a table in two.
NAME_MIN = 20
#: Words up to this wide (``worker-1=2,``) stay on one line: they set their column's narrowest width.
WORD_MIN = 16
#: Hex narrower than a column is never folded; wider, it folds to at most this wide a column.
HEX_MIN = 16
#: A column of names is narrowed to this before an id or a number is split, on a narrow terminal.
NAME_FLOOR = 6
#: Leftmost columns repeated in every part of a cut table, at most.
KEY_COLUMNS = 3

#: rich's default box with padding (0, 1): 3 cells per column (a rule, two pads) and the right edge.
PER_COLUMN = 3
EDGES = 1

_WORD = re.compile(r"(\S+)(\s*)")
_HEX = re.compile(r"[0-9a-fA-F]{17,}")
_RANGE_BREAK = re.compile(r"(?<=\.\.)(?=[^.])")
_NAME_BREAK = re.compile(r"(?<=[/=,;])(?=[^/=,;])")
_HEADER_BREAK = re.compile(r"(?<=_)(?=[^_])")

PROTECTED, NAME, HEX = "protected", "name", "hex"


@dataclass(frozen=True, slots=True)
class Piece:
    """An unbreakable run of a cell and the whitespace after it (dropped at a line break)."""

    text: str
    space: str
    kind: str
    width: int


def _kind(text: str) -> str:
    if not any(c.isalpha() for c in text):
        return PROTECTED if any(c.isdigit() for c in text) else NAME
    return HEX if _HEX.fullmatch(text) else NAME


def pieces(text: str, header: bool = False) -> list[Piece]:
    """The pieces a cell (or a header: breaks after ``_`` only) may be wrapped between."""
    lead = text[: len(text) - len(text.lstrip())]
    # leading blanks are a piece of their own (of the first word): an id after them stays whole
    out: list[Piece] = [Piece(lead, "", NAME, cell_len(lead))] if lead and lead != text else []
    for m in _WORD.finditer(text):
        word, space = m.group(1), m.group(2)
        if header:
            parts = _HEADER_BREAK.split(word)
        else:
            parts = [p for part in _RANGE_BREAK.split(word) for p in _split_name(part)]
        for j, part in enumerate(parts):
            out.append(
                Piece(part, space if j == len(parts) - 1 else "", NAME if header else _kind(part), cell_len(part))
            )
    if not out and text:
        out.append(Piece(text, "", NAME, cell_len(text)))
    return out


def _split_name(part: str) -> list[str]:
    return _NAME_BREAK.split(part) if any(c.isalpha() for c in part) else [part]


def _min_width(p: Piece) -> int:
    if p.kind == PROTECTED:
        return p.width
    return min(p.width, HEX_MIN if p.kind == HEX else NAME_MIN)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells by taking out its middle (an ellipsis in its place)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    room = width - 1
    head_room, tail_room = room - room // 2, room // 2
    if text.isascii():
        return text[:head_room] + ELLIPSIS + (text[-tail_room:] if tail_room else "")
    spans, _ = split_graphemes(text)
    head_end, used = 0, 0
    for _start, end, size in spans:
        if used + size > head_room:
            break
        head_end, used = end, used + size
    tail_start, used = len(text), 0
    for start, _end, size in reversed(spans):
        if used + size > tail_room or start < head_end:
            break
        tail_start, used = start, used + size
    return text[:head_end] + ELLIPSIS + text[tail_start:]


class _Lines:
    """Lines of at most ``width`` cells, filled greedily."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[str] = []
        self.line, self.size, self.space = "", 0, ""

    def add(self, text: str, size: int, space: str, fresh: bool = False) -> None:
        gap = cell_len(self.space) if self.line else 0
        if self.line and (fresh or self.size + gap + size > self.width):
            self.lines.append(self.line)
            self.line, self.size, gap = "", 0, 0
        self.line += (self.space if self.line else "") + text
        self.size += gap + size
        self.space = space

    def done(self) -> list[str]:
        return [*self.lines, self.line]


def wrap(cell: list[Piece], width: int) -> list[str]:
    """The lines of a cell in a column ``width`` cells wide (each at most that wide).

    A word that fits the column stays whole; a longer one breaks between its pieces, and a
    piece wider than the column is shortened (a name: the whole word, on one line) or folded
    (hex; an id wider than the whole terminal, the last resort).
    """
    out = _Lines(max(width, 1))
    for word in _words(cell):
        whole = sum(p.width for p in word)
        if whole <= out.width:
            out.add("".join(p.text for p in word), whole, word[-1].space)
            continue
        if all(p.kind == NAME for p in word) and any(p.width > out.width for p in word):
            short = shorten("".join(p.text for p in word), out.width)  # one line: "[re…red]", not "[re…1[/" "red]"
            out.add(short, cell_len(short), word[-1].space)
            continue
        for p in word:
            if p.width <= out.width:
                out.add(p.text, p.width, p.space)
            elif p.kind == NAME:
                short = shorten(p.text, out.width)
                out.add(short, cell_len(short), p.space)
            else:
                segments = chop_cells(p.text, out.width)
                for k, segment in enumerate(segments):
                    out.add(segment, cell_len(segment), p.space if k == len(segments) - 1 else "", fresh=k > 0)
    return out.done()


@dataclass
class _Column:
    index: int
    natural: int
    minimum: int
    #: The widest id or number: a narrower column splits it (only on a terminal too narrow for it).
    hard: int = 1


@dataclass
class Part:
    """One table of a fitted layout: which columns (indexes into the headers), how wide each is."""

    columns: list[int]
    widths: list[int]
    continued: bool = False


@dataclass
class Layout:
    parts: list[Part]
    #: (header, value) of the columns that hold one value in every row, folded under the table.
    constant: list[tuple[str, str]] = field(default_factory=list)


def table_width(widths: list[int]) -> int:
    return sum(widths) + PER_COLUMN * len(widths) + EDGES


def _words(cell: list[Piece]) -> Iterator[list[Piece]]:
    """The pieces of each word (a run between spaces) of a cell."""
    word: list[Piece] = []
    for p in cell:
        word.append(p)
        if p.space:
            yield word
            word = []
    if word:
        yield word


def _word_min(word: list[Piece]) -> int:
    """How narrow a column may be for this word: whole when short, else its widest unbreakable piece."""
    whole = sum(p.width for p in word)
    if whole <= WORD_MIN:
        return whole
    return max(_min_width(p) for p in word)


def _measure(index: int, header: str, values: list[str]) -> _Column:
    """A column's natural, narrowest and hard widths (pieces made and dropped: a table may be long)."""
    natural = cell_len(header)
    minimum = max([1, *(p.width for p in pieces(header, header=True))])
    hard = 1
    for value in values:
        natural = max(natural, cell_len(value))
        cell = pieces(value)
        for word in _words(cell):
            minimum = max(minimum, _word_min(word))
        for p in cell:
            if p.kind == PROTECTED:
                hard = max(hard, p.width)
    return _Column(index, natural, min(minimum, max(natural, 1)), hard)


def note_lines(items: list[str], width: int, lead: str = "", sep: str = " · ") -> list[str]:
    """``lead`` then the items joined by ``sep``, wrapped at ``width`` between items (inside one if it is wider)."""
    lines: list[str] = []
    line = lead
    for k, item in enumerate(items):
        glue = "" if k == 0 else sep
        if cell_len(line + glue + item) <= width:
            line += glue + item
            continue
        if line.strip():
            lines.append(line + glue.rstrip())
        parts = cell_lines(item, width)
        lines.extend(parts[:-1])
        line = parts[-1]
    lines.append(line)
    return lines


def fit(headers: list[str], rows: list[list[str]], width: int) -> Layout:
    """Lay out a table of text cells for a terminal ``width`` cells wide (see the module's doc)."""
    columns = [_measure(i, h, [r[i] for r in rows]) for i, h in enumerate(headers)]
    if not columns:
        return Layout([])
    if table_width([c.natural for c in columns]) <= width:
        return Layout([Part([c.index for c in columns], [c.natural for c in columns])])
    constant: list[tuple[str, str]] = []
    if len(rows) >= 2:
        kept = [c for c in columns if len({r[c.index] for r in rows}) > 1]
        if kept:
            constant = [(headers[c.index], rows[0][c.index]) for c in columns if c not in kept]
            columns = kept
    cut, key = _cut(columns, rows, width)
    parts = [_widths(columns, width) for columns in cut]
    if key:  # the key columns as wide in every part as in the narrowest: alike in all
        fixed = {i: min(p.widths[k] for p in parts) for k, i in enumerate(parts[0].columns[:key])}
        parts = [_widths([_fixed(c, fixed) for c in columns], width) for columns in cut]
    for part in parts[1:]:
        part.continued = True
    return Layout(parts, constant)


def _fixed(c: _Column, fixed: dict[int, int]) -> _Column:
    if c.index not in fixed:
        return c
    w = fixed[c.index]
    return replace(c, natural=w, minimum=w, hard=min(c.hard, w))


def _cut(columns: list[_Column], rows: list[list[str]], width: int) -> tuple[list[list[_Column]], int]:
    """The columns in tables that fit at their narrowest, each led by the rows' key columns (how many)."""
    if table_width([c.minimum for c in columns]) <= width:
        return [columns], 0
    key = _key(columns, rows, width)
    parts: list[list[_Column]] = []
    current = list(columns[: len(key)])
    for c in columns[len(key) :]:
        if len(current) > len(key) and table_width([x.minimum for x in [*current, c]]) > width:
            parts.append(current)
            current = list(key)
        current.append(c)
    parts.append(current)
    return parts, len(key)


def _key(columns: list[_Column], rows: list[list[str]], width: int) -> list[_Column]:
    """The fewest leftmost columns whose values tell every row apart (one when none do), if narrow enough."""
    for n in range(1, min(KEY_COLUMNS, len(columns) - 1) + 1):
        if len({tuple(r[c.index] for c in columns[:n]) for r in rows}) == len(rows):
            break
    else:
        n = 1
    while n > 1 and table_width([c.minimum for c in columns[:n]]) > width // 2:
        n -= 1
    return columns[:n] if len(columns) > 1 else []


def _widths(columns: list[_Column], width: int) -> Part:
    """Spare width to the columns nearest their natural width first, then in proportion."""
    room = width - table_width([0] * len(columns))
    widths = [c.minimum for c in columns]
    # narrower than its narrowest: names give way first (down to NAME_FLOOR), ids and numbers last
    for floors in ([max(c.hard, NAME_FLOOR) for c in columns], [1] * len(columns)):
        widths = _shrink(widths, floors, room)
    spare = room - sum(widths)
    lacking = sorted(range(len(columns)), key=lambda i: (columns[i].natural - widths[i], i))
    rest = []
    for i in lacking:
        need = columns[i].natural - widths[i]
        if need <= spare:
            widths[i] += need
            spare -= need
        else:
            rest.append(i)
    total_need = sum(columns[i].natural - widths[i] for i in rest)
    if rest and spare > 0:
        shares = [(columns[i].natural - widths[i]) * spare // total_need for i in rest]
        for i, share in zip(rest, shares, strict=True):
            widths[i] += share
        left = spare - sum(shares)
        for i in sorted(rest, key=lambda i: -(columns[i].natural - widths[i]))[:left]:
            widths[i] += 1
    return Part([c.index for c in columns], widths)


def _shrink(widths: list[int], floors: list[int], room: int) -> list[int]:
    """``widths`` narrowed to ``room`` in all, the columns widest above their floor first, none below it."""
    over = [max(w - f, 0) for w, f in zip(widths, floors, strict=True)]
    base = [w - o for w, o in zip(widths, over, strict=True)]
    if sum(widths) <= room or not any(over):
        return widths
    lo, hi = 0, max(over)  # the largest excess every column may keep
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(b + min(o, mid) for b, o in zip(base, over, strict=True)) <= room:
            lo = mid
        else:
            hi = mid - 1
    out = [b + min(o, lo) for b, o in zip(base, over, strict=True)]
    slack = room - sum(out)
    for i in range(len(out)):
        if slack > 0 and over[i] > lo:
            out[i] += 1
            slack -= 1
    return out


def cell_lines(text: str, width: int, header: bool = False) -> list[str]:
    """:func:`wrap` of one cell's text."""
    return wrap(pieces(text, header=header), width)
