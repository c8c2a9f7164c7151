"""Moving consumer-group records between the legacy and prefix-delimited layouts.

The migration-agnostic part of m001, in three modules by role, imported here as one:
:mod:`kvfix.migrations.layout_records` collects every live stream's group records (one
walk of the stream column family, skipping entries), :mod:`kvfix.migrations.layout_plan`
plans per stream (and gives a plan's writes, planned again as they are written),
:mod:`kvfix.migrations.layout_verify` checks the result.

Group number: Kvrocks 2.10.1 counts the groups it created in the stream metadata, the
development build counted the legacy groups it created, so a stream both wrote into
(upgraded-mixed) says 4 for 3 distinct groups.  After a migration the metadata's
group_number is the number of group records the stream holds; it is rewritten only when
it differs (so a consistent legacy stream round-trips byte for byte).
"""

from __future__ import annotations

from kvfix.migrations.layout_plan import build_plan, continues_a_move, plan_stream, stream_plans
from kvfix.migrations.layout_records import (
    Collected,
    GroupRecord,
    Ident,
    Side,
    StreamRecords,
    live_chunks,
    live_layouts,
    stream_records,
)
from kvfix.migrations.layout_verify import verify_plan

__all__ = [
    "Collected",
    "GroupRecord",
    "Ident",
    "Side",
    "StreamRecords",
    "build_plan",
    "continues_a_move",
    "live_chunks",
    "live_layouts",
    "plan_stream",
    "stream_plans",
    "stream_records",
    "verify_plan",
]
