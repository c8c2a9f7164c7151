"""--target: the release the operator will start, which decides what a finding means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kvfix.analysis.targets import TARGETS


def target_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--target",
        type=click.Choice(TARGETS),
        default="2.10",
        show_default=True,
        help="The release you will start: 2.10 (2.10.0 and later: the prefixed layout) or 2.9 "
        "(2.8/2.9, after migrate --to legacy).",
    )(func)
