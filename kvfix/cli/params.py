"""Parameter types for names given on the command line (keys, namespaces, globs)."""

from __future__ import annotations

from typing import Any

import click

from kvfix.textsafe import UnshowError, unshow


class EscapedBytes(click.ParamType):
    """Text standing for arbitrary bytes, as kvfix prints names (``\\xNN``, ``\\\\``).

    Converted while click parses, so a bad escape is a usage error (exit 2, one line) that
    names the argument, never an internal error later.
    """

    name = "text"

    def __init__(self, alternative: str = "") -> None:
        self.alternative = alternative  # e.g. "--key-hex", offered in the error message

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            return unshow(value)
        except UnshowError as exc:
            hint = "use \\xNN with two hex digits" + (f", or {self.alternative}" if self.alternative else "")
            # An optional argument's own hint would read '[KEY]'.
            name = f"'{param.human_readable_name}'" if isinstance(param, click.Argument) else None
            raise click.BadParameter(f"{exc}; {hint}", ctx, param, param_hint=name) from None
