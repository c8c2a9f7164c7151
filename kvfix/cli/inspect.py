"""kvfix inspect: one user key, fully decoded."""

from __future__ import annotations

import click

from kvfix.analysis.inspect import DEFAULT_LIMIT, inspect_key
from kvfix.cli.options import cluster_option, emit, fail, handle_errors, live_option, output_options, salvage_option
from kvfix.cli.params import EscapedBytes
from kvfix.codec.keys import DEFAULT_NAMESPACE
from kvfix.errors import EXIT_FINDINGS
from kvfix.render.inspect_report import inspect_document, inspect_json
from kvfix.store.opening import open_read_only
from kvfix.textsafe import show


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.argument("key", required=False, type=EscapedBytes(alternative="--key-hex"))
@output_options
@cluster_option
@click.option("--key-hex", default=None, help="The user key as hex digits (any bytes), instead of KEY.")
@click.option(
    "--namespace",
    type=EscapedBytes(),
    default=None,
    help="Namespace name, \\xNN escapes for arbitrary bytes (default: the default namespace, __namespace).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Records decoded and shown per column family; the rest are counted.",
)
@click.option("--raw", is_flag=True, help="Show every record's key and value in hex beside the decoding.")
@salvage_option
@live_option
@handle_errors
def inspect(
    path: str,
    key: bytes | None,
    fmt: str | None,
    cluster: bool | None,
    key_hex: str | None,
    namespace: bytes | None,
    limit: int,
    raw: bool,
    salvage: bool,
    live: bool,
) -> int:
    """Decode one user KEY: metadata (type, encoding, expiry, version) and every record.

    KEY is text; \\xNN escapes (as kvfix prints keys) stand for arbitrary bytes, or give
    --key-hex. A key that does not exist prints "no such key" on stderr and exits 1.
    Opens read-only; never changes a byte or a file name of PATH.

    \b
    Examples:
      kvfix inspect /var/lib/kvrocks orders
      kvfix inspect /var/lib/kvrocks orders --namespace tenant_a --raw
      kvfix inspect /var/lib/kvrocks --key-hex 00ff61 --live
    """
    if (key is None) == (key_hex is None):
        raise click.UsageError("give exactly one of KEY or --key-hex")
    if key_hex is not None:
        try:
            user_key = bytes.fromhex(key_hex)
        except ValueError as exc:
            raise click.BadParameter(f"not hex digits: {exc}", param_hint="--key-hex") from exc
    else:
        user_key = key or b""
    ns = DEFAULT_NAMESPACE if namespace is None else namespace
    with open_read_only(path, salvage=salvage, live=live) as db:
        report = inspect_key(db, user_key, namespace=ns, cluster=cluster, limit=limit)
        partial = [f"READ_ERROR: {m}" for m in db.read_errors]
        live_note = f"taken live, as of sequence number {db.state()[1]}" if db.live else None
    if report is not None and partial:
        report.problems[:0] = partial
    if report is not None and live_note:
        report.notes.insert(0, live_note)
    if report is None:
        where = f"{show(ns)}/{show(user_key)}"
        if partial:  # absent from what could be read is not absent
            fail(f"{where} not found in what could be read; the read was partial ({partial[0]})", EXIT_FINDINGS)
        fail(f"no such key: {where}", EXIT_FINDINGS)
        return EXIT_FINDINGS
    emit(fmt, lambda: inspect_document(report, raw), lambda: inspect_json(report, raw))
    return EXIT_FINDINGS if partial else 0
