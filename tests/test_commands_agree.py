"""scan, check, stats and migrate file every stream column family record the same way.

They share one walk and one answer to "whose record is this" (kvfix.analysis.keyspace.
owner_of): a live stream's, a dead version's (stale: the key exists, as a stream of another
version or as another type) or nobody's (orphan).  Adversarial databases hold each kind.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from kvfix.codec.keys import DEFAULT_NAMESPACE as NS
from kvfix.codec.keys import InternalKey
from kvfix.codec.metadata import KeyType, Metadata, StreamId
from kvfix.codec.stream import PelValue
from kvfix.synth import BASE_VERSION, SynthDB, SynthStream, group_value

ENTRY = b"\x01f\x01v"


def adversarial(path, cluster: bool):
    live = SynthStream(b"live", entries=[(StreamId(10, 0), (b"f", b"v"))])
    live.groups.append(("legacy", b"g", group_value(StreamId(10, 0), pending=1)))
    live.pel.append(("legacy", b"g", StreamId(10, 0), PelValue(1, 0, b"c")))
    live.raw_records.append((b"\x00" * 7 + b"\x05ab", b"junk"))  # a group name cut short: decodes as nothing
    other = SynthStream(b"other", entries=[(StreamId(5, 0), (b"a", b"b"))])
    db = SynthDB(streams=[live, other], cluster=cluster)
    slot = db.slot
    db.keys.append((NS, b"now-a-hash", Metadata(KeyType.HASH, True, 0, BASE_VERSION + 9, 1)))
    stale = [
        InternalKey(NS, b"live", BASE_VERSION - 1, StreamId(1, 0).encode(), slot(b"live")),  # old version of a stream
        InternalKey(NS, b"now-a-hash", BASE_VERSION, StreamId(2, 0).encode(), slot(b"now-a-hash")),  # now a hash
        InternalKey(NS, b"now-a-hash", BASE_VERSION, StreamId(3, 0).encode(), slot(b"now-a-hash")),
    ]
    orphans = [InternalKey(NS, b"gone", BASE_VERSION, StreamId(4, 0).encode(), slot(b"gone"))]
    db.raw.extend(("stream", k.encode(), ENTRY) for k in stale + orphans)
    return db.write(path), len(stale), len(orphans)


def _json(*args):
    res = run_cli(*map(str, args), "--format", "json")
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


@pytest.mark.parametrize("cluster", [False, True], ids=["plain", "cluster"])
def test_scan_check_stats_and_migrate_agree_on_every_record(tmp_path, cluster):
    path, n_stale, n_orphan = adversarial(tmp_path / "db", cluster)
    scan, deep = _json("scan", path), _json("scan", path, "--deep")
    check = _json("check", path)
    stats = _json("stats", path)
    plan = _json("migrate", path, "--dry-run")
    for doc in (scan, deep, check):
        assert doc["garbage"]["stale"]["records"] == n_stale
        assert doc["garbage"]["orphan"]["records"] == n_orphan
    assert stats["garbage"]["stream"]["dead_version"]["records"] == n_stale
    assert stats["garbage"]["stream"]["orphan"]["records"] == n_orphan
    skipped = [(row["reason"], row["records"]) for row in plan["skipped"]]
    by_kind = {
        "stale": sum(n for r, n in skipped if r.startswith("records of dead versions")),
        "orphan": sum(n for r, n in skipped if r.startswith("records of a key with no stream metadata")),
        "undecodable": sum(n for r, n in skipped if r.startswith("records that decode as nothing")),
    }
    undecodable = [f for f in scan["findings"] if f["code"] == "UNDECODABLE_RECORD"]
    assert by_kind == {"stale": n_stale, "orphan": n_orphan, "undecodable": len(undecodable)} and undecodable
    assert [f["key"] for f in check["findings"] if f["code"] == "UNDECODABLE_RECORD"] == [u["key"] for u in undecodable]
    live = {s["key"]: s["records"] for s in scan["streams"]}
    assert [s["key"] for s in check["streams"]] == sorted(live)
    assert live["live"]["legacy_group"] == 1 and live["live"]["legacy_pel"] == 1
    assert [(s["key"], s["counts"]["rewrites"]) for s in plan["streams"]] == [("live", 2)]


@pytest.mark.parametrize("entries", [0, 1], ids=["empty", "one-entry"])
def test_a_dead_version_above_the_live_one_counts_once(tmp_path, entries):
    """A dead version sorting after the live one (a higher version: a clock stepped back) is
    read after the live one's records, once, whether or not the live version has records."""
    live = SynthStream(b"k", entries=[(StreamId(10, 0), (b"f", b"v"))][:entries])
    db = SynthDB(streams=[SynthStream(b"a"), live, SynthStream(b"z")])
    slot = db.slot
    dead = [
        InternalKey(NS, b"k", BASE_VERSION - 1, StreamId(1, 0).encode(), slot(b"k")),
        InternalKey(NS, b"k", BASE_VERSION + 7, StreamId(2, 0).encode(), slot(b"k")),
        InternalKey(NS, b"k", BASE_VERSION + 7, StreamId(3, 0).encode(), slot(b"k")),
    ]
    db.raw.extend(("stream", k.encode(), ENTRY) for k in dead)
    path = db.write(tmp_path / "db")
    scans = _json("scan", path), _json("scan", path, "--deep")
    for doc in (*scans, _json("check", path)):
        assert doc["garbage"]["stale"]["records"] == len(dead)
    for doc in scans:
        assert {s["key"]: s["records"]["stale"] for s in doc["streams"]}["k"] == len(dead)
    assert _json("stats", path)["garbage"]["stream"]["dead_version"]["records"] == len(dead)
