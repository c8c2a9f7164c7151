"""Versioned, reversible migrations of a Kvrocks data directory (Alembic-like registry).

Each migration module ``mNNN_<name>.py`` defines a :class:`~kvfix.migrations.base.Migration`
with an id, a description, plan / apply / verify, and revert (its inverse).
"""

from __future__ import annotations

from kvfix.codec.stream import Layout
from kvfix.migrations.base import Migration, Plan, PlanOptions
from kvfix.migrations.m001_stream_groups_prefixed import StreamGroupsLegacy, StreamGroupsPrefixed
from kvfix.migrations.stream_plan import StreamPlan

#: Upgrades in order; each one's revert() is its downgrade.
MIGRATIONS: tuple[Migration, ...] = (StreamGroupsPrefixed(),)


def for_target(layout: Layout) -> Migration:
    """The migration that brings stream group records to ``layout`` (prefixed or legacy)."""
    for m in MIGRATIONS:
        if m.target == layout:
            return m
        if m.source == layout:
            return m.revert()
    raise KeyError(layout)


__all__ = [
    "MIGRATIONS",
    "Migration",
    "Plan",
    "PlanOptions",
    "StreamGroupsLegacy",
    "StreamGroupsPrefixed",
    "StreamPlan",
    "for_target",
]
