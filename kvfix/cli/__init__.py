"""The kvfix command line: one module per command, registered here."""

from __future__ import annotations

import importlib
from typing import Any

import click

from kvfix import __version__
from kvfix.errors import EXIT_CANNOT_RUN
from kvfix.textsafe import safe_text

#: ``kvfix`` alone prints the help (click >= 8.2 signals it with this UsageError subclass).
_HELP_INSTEAD = getattr(click.exceptions, "NoArgsIsHelpError", ())


class OneLineUsageError(click.ClickException):
    """A usage error as every kvfix failure is shown: one line on stderr, exit 2."""

    exit_code = EXIT_CANNOT_RUN

    def show(self, file: Any = None) -> None:
        click.echo(f"kvfix: usage: {self.message}", err=file is None, file=file)


def one_line(exc: click.UsageError, ctx: click.Context | None) -> OneLineUsageError:
    """``<message> (see kvfix COMMAND --help)``: click's message on one line, control bytes escaped."""
    message = " ".join(exc.format_message().split()).removesuffix(".")
    if message[1:2].islower():  # "Missing argument 'PATH'" reads as the rest of kvfix's messages
        message = message[0].lower() + message[1:]
    return OneLineUsageError(f"{safe_text(message)} (see {_command_path(exc, ctx)} --help)")


def _command_path(exc: click.UsageError, ctx: click.Context | None) -> str:
    """The command that refused; ``kvfix`` whatever program name click was given (python -m...)."""
    names = []
    c = exc.ctx
    while c is not None and c.parent is not None:
        names.append(c.info_name or "")
        c = c.parent
    if exc.ctx is None and ctx is not None and ctx.invoked_subcommand:  # raised by a command's body
        names.append(ctx.invoked_subcommand)
    return " ".join(["kvfix", *reversed(names)])


#: Command name -> module and function, in the order of the workflow (as --help lists them).
#: A command's module is imported only when it runs: start-up is part of every command's time.
COMMANDS = {
    "scan": ("kvfix.cli.scan", "scan"),
    "migrate": ("kvfix.cli.migrate", "migrate"),
    "check": ("kvfix.cli.check", "check"),
    "stats": ("kvfix.cli.stats", "stats"),
    "inspect": ("kvfix.cli.inspect", "inspect"),
    "backups": ("kvfix.cli.backups", "backups"),
    "restore": ("kvfix.cli.backups", "restore_cmd"),
}


class KvfixGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    """Turns click's three-line usage errors (usage, hint, error) into :class:`OneLineUsageError`.

    Both places a usage error can come from pass here: parsing kvfix's own options
    (``make_context``) and resolving, parsing and running a command (``invoke``).
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            if isinstance(exc, _HELP_INSTEAD):
                raise
            raise one_line(exc, None) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if isinstance(exc, _HELP_INSTEAD):
                raise
            raise one_line(exc, ctx) from exc


@click.group(cls=KvfixGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvfix")
def main() -> None:
    """Inspect, check and migrate Apache Kvrocks data directories offline.

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 could not run, 3 written but
    not verified (run again), 130/143 interrupted (SIGINT/SIGTERM).
    """
