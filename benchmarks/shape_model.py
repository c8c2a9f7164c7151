"""The shapes, the commands and the targets of benchmarks/shapes.py, and what a run measured."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCAN_R, CHECK_R, STATS_R4, ALLOWANCE_S = 2.0, 3.0, 3.0, 0.5
MIGRATE_MIN_RATE = 100_000  # legacy records per second
RSS_READ_MB, RSS_MIGRATE_MB = 150, 400
PLAIN_MAX_LINES = 300
JSON_PER_STREAM, JSON_PER_GROUP = 4096, 2048
STATS_CFS = ("stream", "default", "metadata", "zset_score")


# --- shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    number: int
    name: str
    quick: tuple[int, ...]
    large: tuple[int, ...]
    describe: Callable[[int], str]


SHAPES = (
    Shape(
        1,
        "entries",
        (100_000,),
        (1_000_000,),
        lambda n: f"10 streams x {n:,} entries, 100 legacy groups (1 consumer) and 1,000 PEL records per stream",
    ),
    Shape(
        2,
        "small-streams",
        (20_000,),
        (100_000, 1_000_000),
        lambda n: f"{n:,} streams x 10 entries, 1 legacy group, 1 consumer, 1 PEL record each",
    ),
    Shape(
        3,
        "huge-pel",
        (100_000,),
        (1_000_000, 10_000_000),
        lambda n: f"1 stream ({max(1, n // 10):,} entries), 10 legacy groups (1 consumer each), {n:,} PEL records",
    ),
    Shape(
        4,
        "many-groups",
        (1_000,),
        (10_000,),
        lambda n: f"1 stream ({2 * n:,} entries), {n:,} legacy groups with 1 consumer and 2 PEL records each",
    ),
    Shape(
        5,
        "mixed",
        (1,),
        (10,),
        lambda m: (
            f"x{m}: 2 streams x {10_000 * m:,} entries (10 groups), {1_000 * m:,} small streams, "
            f"1 stream with {10_000 * m:,} PEL records, 1 with {100 * m:,} groups, {10_000 * m:,} strings/hashes/zsets"
        ),
    ),
)


def find_shape(name: str) -> Shape:
    for shape in SHAPES:
        if name in (shape.name, str(shape.number)):
            return shape
    raise SystemExit(f"unknown shape {name!r}; one of {', '.join(s.name for s in SHAPES)}")


# --- commands and results ------------------------------------------------------------------


@dataclass
class Run:
    exit: int | str  # an exit status, "TIMEOUT" or "KILLED-RSS>...": killed by the Guard
    wall: float
    rss_mb: float  # the largest process's peak (/usr/bin/time %M)
    out_bytes: int = 0
    out_lines: int = 0
    stderr: str = ""
    tree_mb: float = 0.0  # the process tree's summed RSS, sampled every 0.2 s

    @property
    def peak_mb(self) -> float:
        return max(self.rss_mb, self.tree_mb)


@dataclass(frozen=True)
class Command:
    label: str
    args: tuple[str, ...]
    kind: str  # scan | check | stats | dry-run | migrate
    json: bool = False
    copy: bool = False  # run on a fresh copy of the database


COMMANDS = (
    Command("scan", ("scan",), "scan"),
    Command("scan --format json", ("scan", "--format", "json"), "scan", json=True),
    Command("check", ("check",), "check"),
    Command("check --format json", ("check", "--format", "json"), "check", json=True),
    Command("stats", ("stats",), "stats"),
    Command("stats --format json", ("stats", "--format", "json"), "stats", json=True),
    Command("migrate --dry-run", ("migrate", "--dry-run"), "dry-run"),
    Command("migrate --yes --no-backup", ("migrate", "--yes", "--no-backup"), "migrate", copy=True),
    Command(
        "migrate --yes --no-backup --format json",
        ("migrate", "--yes", "--no-backup", "--format", "json"),
        "migrate",
        json=True,
        copy=True,
    ),
)


@dataclass
class ShapeResult:
    shape: str
    size: int
    description: str
    counts: dict[str, Any]
    disk_bytes: int
    raw: dict[str, dict[str, float]]
    #: P, the Python floor (see the module doc).
    floor: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    misses: dict[str, list[str]] = field(default_factory=dict)
    load: float = 0.0  # 1-minute load average before the commands (others' processes make noise)
