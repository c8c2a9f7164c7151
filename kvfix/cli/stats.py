"""kvfix stats: key counts, sizes, biggest keys and garbage, read-only and in bounded memory."""

from __future__ import annotations

import click

from kvfix.analysis.stats import collect_stats
from kvfix.analysis.stats_model import DEFAULT_TOP, StatsFilter
from kvfix.cli.options import (
    cluster_option,
    emit,
    handle_errors,
    live_option,
    output_options,
    read_error_findings,
    salvage_option,
)
from kvfix.cli.params import EscapedBytes
from kvfix.codec.metadata import ALL_TYPE_NAMES
from kvfix.errors import EXIT_FINDINGS
from kvfix.progress import progress_for
from kvfix.render.stats_report import stats_document, stats_json
from kvfix.store.opening import open_read_only


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@output_options
@cluster_option
@click.option(
    "--top",
    "top_n",
    type=click.IntRange(min=0),
    default=DEFAULT_TOP,
    show_default=True,
    help="How many biggest keys to list (by bytes and by records).",
)
@click.option(
    "--namespace",
    "namespace",
    type=EscapedBytes(),
    default=None,
    help="Only this namespace (\\xNN escapes for arbitrary bytes).",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(sorted(ALL_TYPE_NAMES.values())),
    help="Only keys of this type, as TYPE prints it (repeatable).",
)
@click.option(
    "--match",
    "match",
    type=EscapedBytes(),
    default=None,
    help="Only user keys matching this Redis glob (\\xNN escapes for arbitrary bytes).",
)
@salvage_option
@live_option
@handle_errors
def stats(
    path: str,
    fmt: str | None,
    cluster: bool | None,
    top_n: int,
    namespace: bytes | None,
    types: tuple[str, ...],
    match: bytes | None,
    salvage: bool,
    live: bool,
) -> int:
    """Count keys, records and bytes per namespace and type; list the biggest keys and the garbage.

    Live keys are those SCAN would list (neither expired nor dead). Opens read-only; never
    changes a byte or a file name of PATH. Exits 0 whenever it ran (1 when --salvage met a read error).

    \b
    Examples:
      kvfix stats /var/lib/kvrocks --top 20
      kvfix stats /var/lib/kvrocks --live --namespace tenant_a --type hash --match 'user:*'
    """
    filters = StatsFilter(
        namespace=namespace,
        types=frozenset(types),
        match=match,
    )
    with open_read_only(path, salvage=salvage, live=live) as db, progress_for("stats") as progress:
        report = collect_stats(db, cluster=cluster, filters=filters, top_n=top_n, progress=progress)
        partial = read_error_findings(db)
    report.findings[:0] = partial
    emit(fmt, lambda: stats_document(report), lambda: stats_json(report))
    return EXIT_FINDINGS if any(f.code == "READ_ERROR" for f in partial) else 0
