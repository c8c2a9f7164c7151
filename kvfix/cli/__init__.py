"""The kvfix command line: one module per command, registered here."""

from __future__ import annotations

import click

from kvfix import __version__
from kvfix.cli.scan import scan


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvfix")
def main() -> None:
    """Inspect, check and migrate Apache Kvrocks data directories offline.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not run, 130 interrupted.
    """


main.add_command(scan)
