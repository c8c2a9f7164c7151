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
