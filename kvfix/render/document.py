"""A format-neutral report (headings, lines, tables) and its renderers.

Commands build a :class:`Document`; this module turns it into rich tables on a
terminal, tabulate text (plain, Markdown, any tabulate format) elsewhere.  Every cell
is passed through :func:`kvfix.textsafe.safe_text` and rich receives ``Text`` objects,
so neither control bytes nor ``[markup]`` from data reach the terminal; markup formats
(Markdown tables, HTML, LaTeX, wikis) also get their own escapes (:mod:`kvfix.render.formats`).

How much a report shows is a :class:`View` (``--limit``, ``--records``, ``--pretty``): the
command line sets it for the whole command (:func:`viewing`), report builders read it
with :func:`current_view`, so a database of a million streams prints a summary sized for
people and the per-record detail only on request.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO

from tabulate import tabulate

from kvfix.render.formats import cell_escape, safe_tablefmt, text_escape
from kvfix.textsafe import safe_text

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


@dataclass
class Document:
    title: str
    blocks: list[Table | str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.blocks.append(text)

    def table(self, title: str, headers: list[str], rows: list[list[object]], more: str | None = None) -> None:
        self.blocks.append(Table(title, headers, rows, more))


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


def _render_rich(doc: Document, out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    console = Console(file=out, highlight=False, emoji=False, markup=False)
    console.print(Text(_cell(doc.title), style="bold"))
    for block in doc.blocks:
        if isinstance(block, str):
            console.print(Text(_cell(block)))
            continue
        caption = None if block.more is None else Text(_cell(block.more), style="italic")
        table = RichTable(
            title=Text(_cell(block.title), style="bold"), title_justify="left", caption=caption, caption_justify="left"
        )
        for h in block.headers:
            table.add_column(Text(_cell(h)), overflow="fold")
        for row in block.rows:
            table.add_row(*(Text(_cell(c)) for c in row))
        console.print(table)


def _render_markdown(doc: Document, out: IO[str]) -> None:
    out.write(f"## {_md(_cell(doc.title))}\n\n")
    for block in doc.blocks:
        if isinstance(block, str):
            out.write(_md(_cell(block)) + "\n\n")
            continue
        out.write(f"### {_md(_cell(block.title))}\n\n")
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
        if block.rows:
            rows = [[cell(_cell(c)) for c in row] for row in block.rows]
            headers = [cell(_cell(h)) for h in block.headers]
            out.write(tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True) + "\n")
        else:
            out.write("(none)\n")
        if block.more is not None:
            out.write(text(_cell(block.more)) + "\n")
