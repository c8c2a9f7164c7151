"""Which output formats kvfix offers, and what each must escape in text taken from the data.

Names are arbitrary bytes: :func:`kvfix.textsafe.show` makes them printable, but a printable
``|`` still ends a cell of a Markdown table and a ``<`` still opens an HTML tag.  Each markup
format gets its own escape here, for table cells and for the lines around the tables.
Aligned text formats (simple, grid, psql, pretty...) show names as they are: their columns
are told apart by position, and ``show`` text must stay what ``unshow`` reads back.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from tabulate import LATEX_ESCAPE_RULES, tabulate_formats

#: tabulate formats that write cells into markup unescaped (names from the data are hostile):
#: never offered, and rendered as their escaping twin if asked for anyway.
UNSAFE_FORMATS: dict[str, str] = {"unsafehtml": "html", "latex_raw": "latex"}

#: kvfix's own formats, then every tabulate format but these twins (plain is kvfix's own).
OWN_FORMATS = ("rich", "plain", "markdown", "json")


def offered_formats() -> list[str]:
    """The --format choices: kvfix's own, then the safe tabulate formats, sorted."""
    return [*OWN_FORMATS, *sorted(set(tabulate_formats) - set(OWN_FORMATS) - set(UNSAFE_FORMATS))]


def _backslash(chars: str) -> Callable[[str], str]:
    def escape(text: str) -> str:
        return "".join("\\" + c if c in chars else c for c in text)

    return escape


def _entities(chars: str) -> Callable[[str], str]:
    def escape(text: str) -> str:
        return "".join(f"&#{ord(c)};" if c in chars else c for c in text)

    return escape


def _latex(text: str) -> str:
    return "".join(LATEX_ESCAPE_RULES.get(c, c) for c in text)


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _orgtbl(text: str) -> str:
    return text.replace("|", "\\vert{}")


_PIPE = _backslash("|")  # Markdown (GFM) pipe tables, Jira, AsciiDoc, YouTrack: \| is a literal |

#: Escapes tabulate does not do itself, for each format that needs one in its cells.
CELL_ESCAPES: dict[str, Callable[[str], str]] = {
    "github": _PIPE,
    "pipe": _PIPE,
    "jira": _PIPE,
    "asciidoc": _PIPE,
    "youtrack": _PIPE,
    "orgtbl": _orgtbl,
    "rst": _backslash("\\|*`_"),  # inline markup: |substitution|, *emphasis*, `role`, name_ links
    "mediawiki": _entities("&<>|!'[]{}"),  # | and !! split cells; '' [[ {{ are markup
    "moinmoin": _entities("&<>|'[]{}"),
    "textile": _entities("&<>|"),
}

#: Lines and titles around the tables: the cell escape, or the one tabulate applies to cells.
TEXT_ESCAPES: dict[str, Callable[[str], str]] = {
    **CELL_ESCAPES,
    "html": _html,
    "latex": _latex,
    "latex_booktabs": _latex,
    "latex_longtable": _latex,
}


def _unchanged(text: str) -> str:
    return text


def safe_tablefmt(tablefmt: str) -> str:
    return UNSAFE_FORMATS.get(tablefmt, tablefmt)


def cell_escape(tablefmt: str) -> Callable[[str], str]:
    return CELL_ESCAPES.get(safe_tablefmt(tablefmt), _unchanged)


def text_escape(tablefmt: str) -> Callable[[str], str]:
    return TEXT_ESCAPES.get(safe_tablefmt(tablefmt), _unchanged)
