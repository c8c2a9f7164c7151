"""The kvfix command line: one module per command, registered here."""

from __future__ import annotations

import click

from kvfix import __version__
from kvfix.cli.check import check
from kvfix.cli.inspect import inspect
from kvfix.cli.migrate import migrate
from kvfix.cli.scan import scan
from kvfix.cli.stats import stats


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvfix")
def main() -> None:
    """Inspect, check and migrate Apache Kvrocks data directories offline.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not run, 130 interrupted.
    """


main.add_command(scan)
main.add_command(migrate)
main.add_command(stats)
main.add_command(inspect)
main.add_command(check)
