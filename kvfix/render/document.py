"""A format-neutral report (headings, lines, tables) and its renderers.

Commands build a :class:`Document`; this module turns it into rich tables on a
terminal, tabulate text (plain, Markdown, any tabulate format) elsewhere.  Every cell
is passed through :func:`kvfix.textsafe.safe_text` and rich receives ``Text`` objects,
so neither control bytes nor ``[markup]`` from data reach the terminal; markup formats
(Markdown tables, HTML, LaTeX, wikis) also get their own escapes (:mod:`kvfix.render.formats`).

Rich tables fit the console's width (:mod:`kvfix.render.terminal`: ids and numbers never
split, columns of one value folded into a line under the table, a table too wide cut in
parts that repeat the key columns; an empty table is its title and "none"), and show
severities in colour: a column named ``severity``, a ``2 (error)`` cell, ``3 errors`` in
a line.  rich colours only a terminal, never with ``NO_COLOR`` set; plain, Markdown, JSON
and the tabulate formats are never coloured.

How much a report shows is a :class:`View` (``--limit``, ``--records``, ``--pretty``): the
command line sets it for the whole command (:func:`viewing`), report builders read it
with :func:`current_view`, so a database of a million streams prints a summary sized for
people and the per-record detail only on request.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from tabulate import tabulate

from kvfix.bounded import chunked
from kvfix.render.formats import cell_escape, safe_tablefmt, text_escape
from kvfix.textsafe import safe_text

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

TABULATE_ALIASES = {"plain": "simple", "markdown": "github"}

#: Rows a summary table shows by default (--limit).
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class View:
    """How much of a report to show: rows per summary table (0: all), per-record detail, JSON indent."""

    limit: int = DEFAULT_LIMIT
    records: bool = False
    pretty: bool = False

    def fits(self, n: int) -> bool:
        """n rows show uncapped."""
        return self.limit == 0 or n <= self.limit


_DEFAULT_VIEW = View()
_VIEW: ContextVar[View | None] = ContextVar("kvfix_view", default=None)


def current_view() -> View:
    """The view the running command set (:func:`viewing`), or the default one."""
    return _VIEW.get() or _DEFAULT_VIEW


@contextmanager
def viewing(view: View) -> Iterator[View]:
    """Make ``view`` the one report builders and renderers use until the block ends."""
    token = _VIEW.set(view)
    try:
        yield view
    finally:
        _VIEW.reset(token)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[object]] = field(default_factory=list)
    #: A closing line under the rows, e.g. how many were left out and how to see them.
    more: str | None = None


#: Rows of a listing aligned together (one table each): a listing of a million rows is
#: rendered a part at a time.
LISTING_PART = 10_000


@dataclass
class Listing:
    """A table of any length, its rows read once when rendered (a spool), never all held."""

    title: str
    headers: list[str]
    rows: Iterable[list[object]]

    def parts(self) -> Iterator[list[list[object]]]:
        return chunked(self.rows, LISTING_PART)


@dataclass
class Document:
    title: str
    blocks: list[Table | Listing | str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.blocks.append(text)

    def table(self, title: str, headers: list[str], rows: list[list[object]], more: str | None = None) -> None:
        self.blocks.append(Table(title, headers, rows, more))

    def listing(self, title: str, headers: list[str], rows: Iterable[list[object]]) -> None:
        self.blocks.append(Listing(title, headers, rows))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return safe_text(str(value))


def render(doc: Document, fmt: str, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    if fmt == "rich":
        _render_rich(doc, out)
    elif fmt == "markdown":
        _render_markdown(doc, out)
    else:
        _render_tabulate(doc, TABULATE_ALIASES.get(fmt, fmt), out)


#: An empty value in the line of folded columns (as :func:`kvfix.textsafe.label` shows an empty name).
EMPTY = '""'
#: How a severity shows on a terminal (colour only when rich finds one and NO_COLOR is unset).
SEVERITY_STYLES = {"error": "red", "warning": "yellow"}
#: A findings cell of a stream row: how many, and the worst severity (``2 (error)``).
_SEVERITY_CELL = re.compile(r"[\d,]+\s+\((error|warning|info)\)")
#: Counts of findings in the lines around the tables (``2 errors, 1 warning``); zero stays plain.
_SEVERITY_COUNT = re.compile(r"\b[1-9][\d,]* (error|warning)s?\b")
#: A severity column folded under its table for holding one value (``severity error``).
_SEVERITY_NOTE = re.compile(r"\bseverity\s(error|warning)\b")


def _render_rich(doc: Document, out: IO[str]) -> None:
    """Tables fitted to the console's width (:mod:`kvfix.render.terminal`), severities in colour."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False, emoji=False, markup=False)
    console.print(Text(_cell(doc.title), style="bold"))
    for block in doc.blocks:
        if isinstance(block, str):
            console.print(_rich_line(_cell(block)))
            continue
        if isinstance(block, Listing):
            console.print(Text(_cell(block.title), style="bold"))
            for part in block.parts():
                for line in _listing_text(block.headers, part, "simple", _cell).splitlines():
                    console.print(Text(line), soft_wrap=True)
            continue
        for table in _rich_tables(block, console.width):
            console.print(table)


def _rich_line(text: str) -> Text:
    from rich.text import Text

    line = Text(text)
    for m in _SEVERITY_COUNT.finditer(text):
        line.stylize(SEVERITY_STYLES[m.group(1)], m.start(), m.end())
    return line


def _rich_cell(header: str, text: str) -> Text:
    """A cell as rich Text (never markup), its severity coloured: a column named severity, or ``N (error)``."""
    from rich.text import Text

    cell = Text(text)
    if header.strip().lower() == "severity":
        style = SEVERITY_STYLES.get(text.strip())
        if style:
            cell.stylize(style)
    elif m := _SEVERITY_CELL.fullmatch(text):
        style = SEVERITY_STYLES.get(m.group(1))
        if style:
            cell.stylize(style, m.start(1), m.end(1))
    return cell


def _rich_tables(block: Table, width: int) -> Iterator[RenderableType]:
    """A table as one or more rich tables fitting ``width``; an empty one as its title and "none"."""
    from rich.table import Table as RichTable
    from rich.text import Text

    from kvfix.render.terminal import cell_lines, fit

    title = _cell(block.title)
    more = None if block.more is None else Text(_cell(block.more), style="italic")
    if not block.rows:
        yield Text.assemble(Text(title, style="bold"), ": none")
        if more is not None:
            yield more
        return
    headers = [_cell(h) for h in block.headers]
    rows = [[_cell(c) for c in row] for row in block.rows]
    n = max(len(headers), *(len(r) for r in rows))
    headers += [""] * (n - len(headers))
    rows = [r + ["-"] * (n - len(r)) for r in rows]
    layout = fit(headers, rows, width)
    for part in layout.parts:
        table = RichTable(
            title=Text(title + (", continued" if part.continued else ""), style="bold"), title_justify="left"
        )
        columns = list(zip(part.columns, part.widths, strict=True))
        for i, w in columns:
            head = Text("\n".join(cell_lines(headers[i], w, header=True)))
            table.add_column(head, width=w, no_wrap=True, overflow="ellipsis")
        for row in rows:
            table.add_row(*(_rich_cell(headers[i], "\n".join(cell_lines(row[i], w))) for i, w in columns))
        yield table
    if layout.constant:
        yield _constant_note(layout.constant, width)
    if more is not None:
        yield more


def _constant_note(constant: list[tuple[str, str]], width: int) -> Text:
    """The columns folded out of a table for holding one value in every row, severities coloured."""
    from rich.text import Text

    from kvfix.render.terminal import note_lines

    items = [f"{header} {value or EMPTY}" for header, value in constant]
    note = Text("\n".join(note_lines(items, width, lead="same in every row: ")))
    if any(header.strip().lower() == "severity" for header, _ in constant):
        for m in _SEVERITY_NOTE.finditer(note.plain):
            note.stylize(SEVERITY_STYLES[m.group(1)], m.start(1), m.end(1))
    return note


def _render_markdown(doc: Document, out: IO[str]) -> None:
    out.write(f"## {_md(_cell(doc.title))}\n\n")
    for block in doc.blocks:
        if isinstance(block, str):
            out.write(_md(_cell(block)) + "\n\n")
            continue
        out.write(f"### {_md(_cell(block.title))}\n\n")
        if isinstance(block, Listing):
            for part in block.parts():
                out.write(_listing_text(block.headers, part, "github", lambda c: _md(_cell(c))) + "\n\n")
            continue
        if block.rows:
            rows = [[_md(_cell(c)) for c in row] for row in block.rows]
            out.write(tabulate(rows, headers=block.headers, tablefmt="github", disable_numparse=True) + "\n\n")
        else:
            out.write("(none)\n\n")
        if block.more is not None:
            out.write(_md(_cell(block.more)) + "\n\n")


def _md(text: str) -> str:
    """Neutralise Markdown and HTML in data shown in a CI job summary."""
    for ch in "\\`*_{}[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _render_tabulate(doc: Document, tablefmt: str, out: IO[str]) -> None:
    """Any tabulate format; cells and the lines around the tables escaped as the format needs."""
    text, cell, tablefmt = text_escape(tablefmt), cell_escape(tablefmt), safe_tablefmt(tablefmt)
    out.write(text(_cell(doc.title)) + "\n")
    for block in doc.blocks:
        if isinstance(block, str):
            out.write(text(_cell(block)) + "\n")
            continue
        out.write(f"\n{text(_cell(block.title))}\n")
        if isinstance(block, Listing):
            for part in block.parts():
                out.write(_listing_text(block.headers, part, tablefmt, lambda c: cell(_cell(c))) + "\n")
            continue
        if block.rows:
            rows = [[cell(_cell(c)) for c in row] for row in block.rows]
            headers = [cell(_cell(h)) for h in block.headers]
            out.write(tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True) + "\n")
        else:
            out.write("(none)\n")
        if block.more is not None:
            out.write(text(_cell(block.more)) + "\n")


def _listing_text(headers: list[str], rows: list[list[object]], tablefmt: str, cell: Callable[[object], str]) -> str:
    """One part of a listing as a table in ``tablefmt``, every cell through ``cell``."""
    cells = [[cell(c) for c in row] for row in rows]
    return tabulate(cells, headers=[cell(h) for h in headers], tablefmt=tablefmt, disable_numparse=True)
