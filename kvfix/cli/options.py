"""Options and behaviour every kvfix command shares (one decorator each, sqlite-utils style)."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from kvfix.analysis.findings import Finding, exceeds, finding
from kvfix.analysis.scope import Scope
from kvfix.cli.params import EscapedBytes
from kvfix.errors import (
    EXIT_CANNOT_RUN,
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    Interrupted,
    KvfixError,
)
from kvfix.render import Document, render
from kvfix.render.document import DEFAULT_LIMIT, View, viewing
from kvfix.render.formats import offered_formats
from kvfix.render.jsonout import dump
from kvfix.signals import NAMES, SIGNALS
from kvfix.store.database import Database
from kvfix.store.versions import kvfix_rocksdb, writer_of
from kvfix.textsafe import safe_text

FORMATS = offered_formats()


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format rich|plain|markdown|json|<tabulate format> (default rich on a terminal, plain elsewhere), --pretty."""
    return _output_options(func, summary=False)


def summary_output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """output_options plus --limit N and --records: for the reports on every stream (scan, check,
    migrate), whose text is a capped summary and whose JSON leaves per-record detail to --records."""
    return _output_options(func, summary=True)


def _output_options(func: Callable[..., Any], summary: bool) -> Callable[..., Any]:
    """The options make the command's :class:`View` (:func:`kvfix.render.document.viewing`) for the
    whole call, so every report it builds and renders (a confirmation's plan too) sees them."""

    @functools.wraps(func)
    def with_view(*args: Any, pretty: bool = False, **kw: Any) -> Any:
        view = View(kw.pop("limit"), kw.pop("records"), pretty) if summary else View(pretty=pretty)
        with viewing(view):
            return func(*args, **kw)

    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            metavar="FORMAT",
            default=None,
            help="rich (terminal default), plain, markdown, json, or a tabulate format such as github or grid "
            "(a wrong name lists them all).",
        ),
        click.option("--pretty", is_flag=True, help="JSON indented by 2 (default: compact)."),
    ]
    if summary:
        options += [
            click.option(
                "--limit",
                type=click.IntRange(min=0),
                default=DEFAULT_LIMIT,
                show_default=True,
                metavar="N",
                help="Rows per summary table, worst first; 0 shows every row.",
            ),
            click.option(
                "--records",
                is_flag=True,
                help="Also the per-record detail (every collision, PEL record, rewrite), in text and JSON.",
            ),
        ]
    for option in reversed(options):
        with_view = option(with_view)
    return with_view


def fail_on_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--fail-on",
        type=click.Choice(["error", "warning", "info"]),
        default="warning",
        show_default=True,
        help="Exit 1 when a finding at or above this severity is present.",
    )(func)


def cluster_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--cluster/--no-cluster",
        default=None,
        help="Keys carry cluster slot ids (default: detected from the data).",
    )(func)


def salvage_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--salvage",
        is_flag=True,
        help="On a read error (a damaged file), report what could be read, marked partial (READ_ERROR), "
        "instead of stopping with exit 2.",
    )(func)


def live_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--live",
        is_flag=True,
        help="Read the directory of a running server (a RocksDB secondary instance, the view as of the open); "
        "writes nothing to it.",
    )(func)


def read_error_findings(db: Database) -> list[Finding]:
    """What a salvaging open could not read, as error findings (the report is partial), and
    for a live open the instant the view is of."""
    out = [finding("READ_ERROR", message) for message in db.read_errors]
    writer = writer_of(db.path)
    if writer is not None and writer.newer_than_kvfix:
        out.append(
            finding(
                "NEWER_ROCKSDB",
                f"written by RocksDB {writer.text} ({writer.options_file}), newer than kvfix's {kvfix_rocksdb()}: "
                "what it reads is checked, a format it does not know is a read error; kvfix will not write here",
                rocksdb=writer.text,
            )
        )
    if db.live:
        seq = db.state()[1]
        out.append(finding("LIVE_VIEW", f"taken live, as of sequence number {seq}", sequence=str(seq)))
    return out


def interrupt_exit(signum: int | None) -> int:
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def resolve_format(fmt: str | None) -> str:
    if fmt:
        return fmt
    return "rich" if sys.stdout.isatty() else "plain"


def finding_report_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Summary output options, --fail-on and --cluster/--no-cluster: what scan and check take."""
    return summary_output_options(fail_on_option(cluster_option(func)))


def scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--namespace, --stream (repeatable) and --match, passed on as one ``scope`` (a Scope)."""

    @functools.wraps(func)
    def wrapper(*args: Any, namespace: bytes | None, streams: tuple[bytes, ...], match: bytes | None, **kw: Any) -> Any:
        return func(*args, scope=Scope(namespace, frozenset(streams), match), **kw)

    wrapper = click.option(
        "--match",
        "match",
        type=EscapedBytes(),
        default=None,
        help="Only streams whose key matches this Redis glob (\\xNN escapes for arbitrary bytes).",
    )(wrapper)
    wrapper = click.option(
        "--stream",
        "streams",
        type=EscapedBytes(),
        multiple=True,
        help="Only this stream key (repeatable; in every namespace unless --namespace is given).",
    )(wrapper)
    return click.option(
        "--namespace",
        "namespace",
        type=EscapedBytes(),
        default=None,
        help="Only streams of this namespace. With any of these three, orphans are not looked for.",
    )(wrapper)


def emit(fmt: str | None, doc: Callable[[], Document], json_obj: Callable[[], Any]) -> None:
    """Print the report in ``fmt``; only the form asked for is built (a plan's can be large).

    Both builders and the writers read the command's view (--limit, --records, --pretty).
    """
    fmt = resolve_format(fmt)
    if fmt == "json":
        dump(json_obj())
    else:
        render(doc(), fmt)


def findings_exit(findings: list[Finding], fail_on: str) -> int:
    return EXIT_FINDINGS if exceeds(findings, fail_on) else EXIT_OK


def fail(message: str, code: int = EXIT_CANNOT_RUN) -> None:
    click.echo(f"kvfix: {safe_text(message)}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., int | None]) -> Callable[..., None]:
    """Turn every failure into one line on stderr and a documented exit code; no tracebacks.

    Set KVFIX_DEBUG=1 to see the traceback of an unexpected error.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            with SIGNALS.installed():
                code = func(*args, **kwargs)
        except KvfixError as exc:
            fail(exc.message, exc.exit_code)
        except Interrupted as exc:
            fail(f"interrupted by {NAMES.get(exc.signum, 'a signal')}", interrupt_exit(exc.signum))
        except KeyboardInterrupt:
            fail("interrupted by SIGINT (Ctrl-C)", EXIT_INTERRUPTED)
        except BrokenPipeError:
            sys.stderr.close()
            os._exit(EXIT_OK)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("KVFIX_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
                "(KVFIX_DEBUG=1 shows the traceback)"
            )
        sys.exit(code or EXIT_OK)

    return wrapper
