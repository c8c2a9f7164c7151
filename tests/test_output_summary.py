"""Output sized for people, detail on request: summaries by default, every record with --records.

Shapes from kvfix.synth: 2,000 small streams with legacy groups (the production shape that
printed one row per record), one stream with many groups and many PEL records, a clean
database with one bad stream last in key order (worst first), and counters beyond 2^53.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURE_NAMES, run_cli, unpack

from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, PelValue
from kvfix.render.document import View, current_view
from kvfix.synth import SynthDB, SynthStream, group_value

STREAMS = 2_000
GROUPS = (b"billing", b"audit")
MAX_LINES = 64  # a screen or two, the closing "next:" step included
MORE = re.compile(r"^… and ([\d,]+) more (\w+): --limit 0 for all, or --format json$", re.M)


def small_streams(n: int = STREAMS) -> list[SynthStream]:
    """As tests/test_migrate_kill.py build(): 2 legacy groups, 2 consumers and 2 PEL records each."""
    streams = []
    for i in range(n):
        base = 1_795_775_557_000 + i
        ids = [StreamId(base, s) for s in range(3)]
        s = SynthStream(f"stream:{i:05d}".encode(), entries=[(x, (b"f", b"v%d" % i)) for x in ids])
        for g in GROUPS:
            s.groups.append(("legacy", g, group_value(ids[-1], consumers=2, pending=2, entries_read=3)))
            s.consumers.append(("legacy", g, b"w1", ConsumerValue(1, base, base)))
            s.consumers.append(("legacy", g, b"w2", ConsumerValue(1, base, base)))
            s.pel.append(("legacy", g, ids[0], PelValue(base, 0, b"w1")))
            s.pel.append(("legacy", g, ids[1], PelValue(base, 1, b"w2")))
        streams.append(s)
    return streams


def wide_stream(groups: int = 150, pel: int = 3_000) -> SynthStream:
    """One stream with many groups, each with a consumer, and many PEL records spread over them."""
    base = 1_795_775_557_000
    ids = [StreamId(base + i, 0) for i in range(pel)]
    s = SynthStream(b"wide", entries=[(x, (b"f", b"v")) for x in ids])
    names = [b"group-%03d" % g for g in range(groups)]
    for name in names:
        s.groups.append(("legacy", name, group_value(ids[-1], consumers=1, pending=pel // groups)))
        s.consumers.append(("legacy", name, b"worker", ConsumerValue(pel // groups, base, base)))
    s.pel.extend(("legacy", names[i % groups], x, PelValue(base, 1, b"worker")) for i, x in enumerate(ids))
    return s


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    return SynthDB(streams=small_streams()).write(tmp_path_factory.mktemp("many") / "db")


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    return SynthDB(streams=[wide_stream()]).write(tmp_path_factory.mktemp("wide") / "db")


def text(*args: object) -> str:
    res = run_cli(*args, "--format", "plain")
    assert res.exit_code in (0, 1), res.output
    return res.stdout


def doc(*args: object) -> tuple[dict, int]:
    """(parsed JSON, its size in bytes)."""
    res = run_cli(*args, "--format", "json")
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout), len(res.stdout.encode())


COMMANDS = {"scan": ("scan",), "check": ("check",), "migrate": ("migrate", "--dry-run")}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_default_text_fits_a_screen_or_two(many, command):
    name, *extra = COMMANDS[command]
    out = text(name, many, *extra)
    assert len(out.splitlines()) <= MAX_LINES, out
    left = MORE.findall(out)
    assert ("1,980", "streams") in left, out  # 20 of 2,000 shown, the closing line says how to see the rest
    assert "stream:01999" not in out  # no table has one row per stream, let alone per record
    if command == "migrate":
        assert "old key" not in out and "--records" in out


def test_findings_are_one_row_per_code_worst_first(many):
    out = text("scan", many)
    table = (
        out.split("Findings (4,000) by code, worst first (one row each: --records, or --format json)\n", 1)[1]
        .split("\n\n", 1)[0]
        .splitlines()
    )
    rows = table[2:]  # header and rule
    assert [r.split()[:3] for r in rows] == [
        ["error", "SCAN_COLLISION", "2,000"],
        ["warning", "LEGACY_LAYOUT", "2,000"],
    ]
    assert "__namespace/stream:00000, __namespace/stream:00001, __namespace/stream:00002, … +1,997" in rows[0]


def test_limit_zero_shows_every_row(many):
    out = text("scan", many, "--limit", "0")
    assert not MORE.search(out)
    streams = out.split("Streams, worst first (2,000)\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert len(streams) == STREAMS
    groups = out.split("Groups, worst first (4,000)\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert len(groups) == 2 * STREAMS
    assert len(re.findall(r"^(error|warning) ", out, re.M)) == 2 * STREAMS  # one row per finding
    assert "Streams to migrate, worst first (2,000)\n" in text("migrate", many, "--dry-run", "--limit", "0")


def test_limit_caps_every_summary_table(many):
    out = text("scan", many, "--limit", "3")
    assert MORE.findall(out) == [("1,997", "streams"), ("3,997", "groups")]
    assert MORE.findall(text("scan", many, "--limit", "1"))[0] == ("1", "codes")
    assert "Streams, worst first (3 of 2,000)" in out and "Groups, worst first (3 of 4,000)" in out


def test_default_json_is_per_stream_and_group(many):
    scan, size = doc("scan", many)
    assert scan["schema"] == 2 and scan["records"] is False
    assert size < STREAMS * 4096 + 2 * STREAMS * 2048
    for s in scan["streams"]:
        assert "collision_records" not in s and s["collision_count"] == 10
        assert isinstance(s["version"], str) and int(s["version"]) > 2**53
        for g in s["groups"]:
            assert "pel" not in g and g["pel_records"] == 2
            assert [c["pending"] for c in g["consumers"]] == [1, 1]
            kinds = {c["kind"]: c for c in g["collisions"]}
            assert {k: c["records"] for k, c in kinds.items()} == {
                "legacy_group": 1,
                "legacy_consumer": 2,
                "legacy_pel": 2,
            }
            assert all(c["first_alias_id"] <= c["last_alias_id"] and "XRANGE - +" in c["scans"] for c in kinds.values())
    plan, size = doc("migrate", many, "--dry-run")
    assert plan["schema"] == 2 and plan["summary"]["rewrites"] == STREAMS * 10
    assert size < STREAMS * 4096
    for s in plan["streams"]:
        assert "rewrites" not in s and "drops" not in s and s["counts"]["rewrites"] == 10
        assert [g["rewrites"] for g in s["groups"]] == [{"legacy_group": 1, "legacy_consumer": 2, "legacy_pel": 2}] * 2
    check, size = doc("check", many)
    assert check["schema"] == 2 and len(check["streams"]) == STREAMS and size < STREAMS * 4096
    assert all("bad_value_records" not in s for s in check["streams"])


def test_json_is_compact_unless_pretty(wide):
    res = run_cli("scan", wide, "--format", "json")
    assert res.stdout.count("\n") == 1 and '"schema":2,' in res.stdout
    pretty = run_cli("scan", wide, "--format", "json", "--pretty")
    assert '\n  "schema": 2,\n' in pretty.stdout
    assert json.loads(pretty.stdout) == json.loads(res.stdout)


def test_many_groups_and_pel_records_stay_a_summary(wide):
    out = text("scan", wide)
    assert len(out.splitlines()) <= MAX_LINES and ("130", "groups") in MORE.findall(out)
    assert re.search(r" 22 \(\d+-\d+(\.\.\d+-\d+)?\)$", out, re.M)  # a group's collisions: one cell, count and range
    scan, size = doc("scan", wide)
    [s] = scan["streams"]
    assert size < 4096 + 150 * 2048
    assert sum(c["records"] for g in s["groups"] for c in g["collisions"]) == s["collision_count"] == 3_300
    plan = text("migrate", wide, "--dry-run")
    assert len(plan.splitlines()) <= MAX_LINES and "150 group, 150 consumer, 3,000 pel" in plan


def test_records_bring_every_record_back(wide):
    scan, _ = doc("scan", wide, "--records")
    [s] = scan["streams"]
    assert scan["records"] is True and len(s["collision_records"]) == s["collision_count"] == 3_300
    assert {"alias_id", "subkey_hex", "scans", "releases"} <= set(s["collision_records"][0])
    assert sum(len(g["pel"]) for g in s["groups"]) == 3_000
    pel_only, _ = doc("scan", wide, "--pel")  # --pel is the PEL part of --records
    assert "collision_records" not in pel_only["streams"][0]
    assert sum(len(g["pel"]) for g in pel_only["streams"][0]["groups"]) == 3_000
    plan, _ = doc("migrate", wide, "--dry-run", "--records")
    [p] = plan["streams"]
    assert len(p["rewrites"]) == p["counts"]["rewrites"] == 3_300
    assert all(r["old_key_hex"] and r["new_key_hex"] for r in p["rewrites"])
    out = text("migrate", wide, "--dry-run", "--records")
    assert "Rewrites (old key -> new key, value unchanged)" in out
    assert out.count(" legacy_pel ") == 3_000
    out = text("scan", wide, "--records")
    assert "Pending entries" in out and "Scan collisions" in out and out.count(" legacy_pel ") == 150


def test_worst_stream_first_whatever_its_key(tmp_path):
    clean = [SynthStream(b"a%04d" % i, entries=[(StreamId(5, i), (b"f", b"v"))]) for i in range(50)]
    bad = small_streams(1)[0]
    bad.key = b"zzz-last"
    path = SynthDB(streams=[*clean, bad]).write(tmp_path / "db")
    for command in ("scan", "check"):
        out = text(command, path, "--limit", "2")
        streams = out.split("Streams, worst first (2 of 51)\n", 1)[1].splitlines()[2:4]
        assert "zzz-last" in streams[0], out
    out = text("scan", path, "--limit", "1")
    assert "SCAN_COLLISION" in out and "LEGACY_LAYOUT" not in out  # errors before warnings, capped


def test_integers_beyond_2_53_are_strings(tmp_path):
    s = small_streams(1)[0]
    s.size = 2**60
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    scan, _ = doc("scan", path)
    assert scan["streams"][0]["size"] == str(2**60)
    check, _ = doc("check", path)
    assert check["streams"][0]["size"] == str(2**60)
    mismatch = next(f for f in check["findings"] if f["code"] == "STREAM_SIZE_MISMATCH")
    assert str(2**60) in json.dumps(mismatch["details"])  # found: the stored counter, as text


def test_real_run_prints_the_result_not_the_plan_again(tmp_path, many):
    copy = tmp_path / "db"
    shutil.copytree(many, copy)
    res = run_cli("migrate", copy, "--yes", "--no-backup", "--format", "plain")
    assert res.exit_code == 0, res.output
    assert "verify: ok" in res.stdout and "Streams to migrate" not in res.stdout
    assert len(res.stdout.splitlines()) < 10


@pytest.mark.parametrize("fmt", ["plain", "markdown", "rich", "grid", "json"])
def test_real_fixtures_still_render(tmp_path, fmt):
    for name in FIXTURE_NAMES:
        path = unpack(name, tmp_path / name)
        for command in (["scan"], ["check"], ["migrate", "--dry-run"], ["scan", "--records"]):
            extra = ["--on-conflict", "keep-prefixed"] if name == "upgraded-mixed" and command[0] == "migrate" else []
            res = run_cli(command[0], path, *command[1:], *extra, "--format", fmt)
            assert res.exit_code in (0, 1), (name, command, res.output)
            assert res.stdout and not MORE.search(res.stdout), (name, command)  # small: nothing left out
            if fmt == "json":
                assert json.loads(res.stdout)["schema"] == 2


def test_summary_options_only_where_they_apply():
    for command in ("scan", "check", "migrate"):
        help_text = run_cli(command, "--help").stdout
        assert "--limit" in help_text and "--records" in help_text and "--pretty" in help_text
    assert "--records" not in run_cli("stats", "--help").stdout
    assert "--pretty" in run_cli("inspect", "--help").stdout


def test_the_view_ends_with_the_command(many):
    run_cli("scan", many, "--limit", "0", "--records", "--format", "json")
    assert current_view() == View()
