"""The targets judged and the report written by benchmarks/shapes.py (tables in Markdown)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from shape_model import (
    ALLOWANCE_S,
    CHECK_R,
    COMMANDS,
    JSON_PER_GROUP,
    JSON_PER_STREAM,
    MIGRATE_MIN_RATE,
    PLAIN_MAX_LINES,
    RSS_MIGRATE_MB,
    RSS_READ_MB,
    SCAN_R,
    STATS_CFS,
    STATS_R4,
    Command,
    Run,
    ShapeResult,
)


def time_limit(command: Command, r: ShapeResult) -> float | None:
    r_stream = r.raw["stream"]["seconds"]
    r4 = sum(r.raw[cf]["seconds"] for cf in STATS_CFS)
    if command.kind == "scan":
        return SCAN_R * r_stream + ALLOWANCE_S
    if command.kind == "check":
        return CHECK_R * r_stream + ALLOWANCE_S
    if command.kind == "stats":
        return STATS_R4 * r4 + ALLOWANCE_S
    if command.kind == "migrate":
        return r.counts["legacy"] / MIGRATE_MIN_RATE + ALLOWANCE_S
    return None


def base_seconds(command: Command, r: ShapeResult) -> float:
    """What wall time is compared with: R4 for stats, R otherwise."""
    cfs = STATS_CFS if command.kind == "stats" else ("stream",)
    return sum(r.raw[cf]["seconds"] for cf in cfs)


def judge(command: Command, run: Run, r: ShapeResult) -> list[str]:
    """Every target this run misses, each with by how much."""
    if isinstance(run.exit, str):  # killed by the Guard
        return [f"{run.exit} after {run.wall:.0f} s (peak sampled {run.peak_mb:.0f} MB)"]
    misses: list[str] = []
    if run.exit not in (0, 1):
        misses.append(f"exit {run.exit}: {_last_line(run.stderr)}")
    limit = time_limit(command, r)
    if limit is not None and run.wall > limit:
        p = r.floor["seconds"]
        misses.append(
            f"time {run.wall:.2f} s > {limit:.2f} s ({run.wall / limit:.1f}x; "
            f"P + 0.5 s = {p + ALLOWANCE_S:.2f} s, {run.wall / (p + ALLOWANCE_S):.1f}x the Python floor)"
        )
    rss_max = RSS_MIGRATE_MB if command.kind in ("migrate", "dry-run") else RSS_READ_MB
    if run.peak_mb > rss_max:
        misses.append(f"RSS {run.peak_mb:.0f} MB > {rss_max} MB ({run.peak_mb / rss_max:.1f}x)")
    if command.json:
        budget = JSON_PER_STREAM * r.counts["streams"] + JSON_PER_GROUP * r.counts["groups"]
        if run.out_bytes > budget:
            misses.append(f"JSON {_kb(run.out_bytes)} > {_kb(budget)} ({run.out_bytes / budget:.1f}x)")
    elif run.out_lines > PLAIN_MAX_LINES:
        misses.append(f"output {run.out_lines:,} lines > {PLAIN_MAX_LINES} ({run.out_lines / PLAIN_MAX_LINES:.1f}x)")
    return misses


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no stderr")[:200].replace("|", "\\|")


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _rss(run: Run) -> str:
    """The largest process's peak, and the sampled tree's when workers added to it."""
    tree = f" (tree {run.tree_mb:.0f})" if run.tree_mb > 1.1 * run.rss_mb else ""
    return f"{run.rss_mb:.0f}{tree}"


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB" if n < 1024**2 else f"{n / 1024**2:,.1f} MB"


def raw_table(r: ShapeResult) -> list[str]:
    lines = ["| column family | records | raw pass s | open s | M records/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for cf in STATS_CFS:
        d = r.raw[cf]
        rate = d["records"] / d["seconds"] / 1e6 if d["seconds"] > 0 else 0.0
        lines.append(f"| {cf} | {int(d['records']):,} | {d['seconds']:.3f} | {d['open']:.3f} | {rate:.2f} |")
    return lines


def command_table(r: ShapeResult) -> list[str]:
    lines = [
        "| command | exit | wall s | x R | x P | limit s | peak RSS MB | output | legacy rec/s | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for command in COMMANDS:
        run = r.runs[command.label]
        base = base_seconds(command, r)
        ratio = f"{run.wall / base:.1f}" if base > 0 else "-"
        floor = r.floor["seconds"]
        over_floor = f"{run.wall / floor:.1f}" if floor > 0 else "-"
        limit = time_limit(command, r)
        rate = f"{r.counts['legacy'] / run.wall:,.0f}" if command.kind in ("migrate", "dry-run") else ""
        out = f"{_kb(run.out_bytes)}, {run.out_lines:,} lines"
        misses = r.misses[command.label]
        verdict = "PASS" if not misses else "FAIL: " + "; ".join(misses)
        lines.append(
            f"| `{command.label}` | {run.exit} | {run.wall:.2f} | {ratio} | {over_floor} | "
            f"{'-' if limit is None else f'{limit:.2f}'} | {_rss(run)} | {out} | {rate} | {verdict} |"
        )
    return lines


def shape_report(r: ShapeResult) -> str:
    c = r.counts
    head = [
        f"### {r.shape} ({r.size:,}): {r.description}",
        "",
        f"{_n(c['streams'], 'stream')}, {_n(c['entries'], 'entry', 'entries')}, "
        f"{_n(c['legacy'], 'legacy record')} ({_n(c['groups'], 'group')}, {_n(c['consumers'], 'consumer')}, "
        f"{c['pel']:,} PEL), {_n(c['plain_keys'], 'other key')}; generated in {c['generate_s']:.1f} s, "
        f"{r.disk_bytes / 1e6:,.0f} MB on disk. R = {r.raw['stream']['seconds']:.3f} s, "
        f"R4 = {sum(r.raw[cf]['seconds'] for cf in STATS_CFS):.3f} s, P = {r.floor['seconds']:.3f} s. "
        f"Load average before the commands: {r.load:.2f} (on {os.cpu_count()} CPUs).",
        "",
    ]
    return "\n".join([*head, *raw_table(r), "", *command_table(r), ""])


def machine() -> str:
    """The machine line of benchmarks/bench.py (one place that reads /proc and the versions)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import machine as bench_machine

    return f"machine: {bench_machine()}"


def summary(results: list[ShapeResult]) -> list[str]:
    lines = ["## Misses", ""]
    for r in results:
        for label, misses in r.misses.items():
            lines.extend(f"- {r.shape} ({r.size:,}) `{label}`: {m}" for m in misses)
    if len(lines) == 2:
        lines.append("none: every target met")
    return lines


def to_json(results: list[ShapeResult]) -> list[dict[str, Any]]:
    return [
        {
            "shape": r.shape,
            "size": r.size,
            "description": r.description,
            "counts": r.counts,
            "disk_bytes": r.disk_bytes,
            "raw": r.raw,
            "floor": r.floor,
            "load": r.load,
            "commands": {k: {**vars(run), "misses": r.misses[k]} for k, run in r.runs.items()},
        }
        for r in results
    ]
