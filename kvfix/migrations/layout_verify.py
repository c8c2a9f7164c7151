"""Verifying m001: after a run, each migrated stream holds exactly the group records it planned."""

from __future__ import annotations

from collections.abc import Iterator

from kvfix.analysis.scope import Scope
from kvfix.codec.stream import Layout, classify
from kvfix.migrations.base import Plan, StreamPlan
from kvfix.migrations.layout_records import Collected, Ident, live_chunks
from kvfix.store.database import Database
from kvfix.textsafe import show


def verify_plan(db: Database, plan: Plan, streams_done: int | None = None) -> list[str]:
    """Re-read the group-record regions: each migrated stream holds exactly its planned state.

    Records are compared by subkey and value bytes; only a record the plan does not
    expect is classified (an entry at a small id is fine, a group record is not), so a
    verification costs a read and a comparison per record, and holds one stream's group
    records at a time.  With ``streams_done`` None every live stream is also checked for
    records left in the source layout.
    """
    done = plan.streams[: len(plan.streams) if streams_done is None else streams_done]
    planned = {(sp.namespace, sp.key): sp for sp in done}
    blocked = {(s.namespace, s.key) for s in plan.streams if s.blocked}
    problems: list[str] = []
    checked: set[Ident] = set()
    for ident, n, held in _held_streams(db, plan.cluster, plan.scope):
        sp = planned.get(ident)
        if sp is not None:
            checked.add(ident)
            problems.extend(_stream_problems(db, plan, sp, n, held))
        elif streams_done is None and ident not in blocked and _holds_layout(held, n, plan.source):
            problems.append(f"{show(ident[0])}/{show(ident[1])}: {plan.source} records in a live stream")
    for ident, sp in planned.items():
        if ident not in checked:  # no group record left at all
            problems.extend(_stream_problems(db, plan, sp, len(sp.prefix), {}))
    return problems


def _held_streams(db: Database, cluster: bool, scope: Scope) -> Iterator[tuple[Ident, int, dict[bytes, bytes]]]:
    """(stream, prefix length, whole key -> value of every record the walk reads) per live stream."""
    current: Ident | None = None
    held: dict[bytes, bytes] = {}
    n = 0
    for sr, chunk, prefix_len in live_chunks(db, cluster, Collected(False, 0), scope):
        ident = (sr.live.key.namespace, sr.live.key.user_key)
        if ident != current:  # a stream's records come together, in key order
            if current is not None:
                yield current, n, held
            current, n, held = ident, prefix_len, {}
        held.update(chunk)
    if current is not None:
        yield current, n, held


def _holds_layout(held: dict[bytes, bytes], n: int, layout: Layout) -> bool:
    return any(_group_layout(whole[n:], value) == layout for whole, value in held.items())


def _stream_problems(db: Database, plan: Plan, sp: StreamPlan, n: int, held: dict[bytes, bytes]) -> list[str]:
    where = f"{show(sp.namespace)}/{show(sp.key)}"
    out: list[str] = []
    prefix = sp.prefix
    expected = {prefix + sub: value for sub, value in sp.expected}
    layouts = [_group_layout(whole[n:], held[whole]) for whole in held.keys() - expected.keys()]
    left = layouts.count(plan.source)
    unplanned = len(layouts) - layouts.count(None)
    if left:
        out.append(f"{where}: {left} {plan.source} records left")
    missing = changed = 0
    for whole, want in expected.items():
        value = held.get(whole)
        if value is None:
            missing += 1
        elif value != want:
            changed += 1
    if missing or changed or unplanned > left:
        out.append(
            f"{where}: group records differ from the plan ({missing} missing, {changed} with another value, "
            f"{unplanned} not planned)"
        )
    if sp.metadata is not None and db.get("metadata", sp.metadata.key) != sp.metadata.new:
        out.append(f"{where}: stream metadata is not what the plan wrote")
    return out


def _group_layout(sub: bytes, value: bytes) -> Layout | None:
    """The layout of a group record, None for an entry or a record that decodes as nothing."""
    c = classify(sub, value)
    if c.key is None or c.value is None:
        return None
    return c.key.kind.layout
