"""A deep scan split over two processes reports exactly what one process reports.

Any split key must give the same report (only the balance between the processes depends
on it), including keys inside a stream: among its legacy records, among its entries, in
its 0xFF*8 region.  A failing second process must not change the result either.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_scale_walk import adversarial_db

import kvfix.analysis.scan as scan_module
import kvfix.analysis.sharded as sharded_module
from kvfix.analysis.keyspace import survey_keyspace
from kvfix.analysis.scan import scan_database
from kvfix.analysis.walk import Half
from kvfix.codec.ints import u64
from kvfix.codec.keys import decode_metadata_key, internal_prefix
from kvfix.codec.metadata import stream_version
from kvfix.render.scan_report import scan_json
from kvfix.store.opening import open_read_only
from kvfix.synth import BASE_VERSION, DEFAULT_NS, BulkSpec, bulk_load


def _deep(path: Path, **kw) -> dict:
    with open_read_only(path) as db:
        return scan_json(scan_database(db, deep=True, now_ms=0, **kw), with_pel=True, records=True)


def _all_keys(path: Path) -> list[bytes]:
    with open_read_only(path) as db:
        it = db.iterator("stream")
        it.seek_to_first()
        keys = []
        while it.valid():
            keys.append(it.key())
            it.next()
    return keys


def _splits(path: Path, cluster: bool) -> list[Half]:
    """A split at every stream's metadata key, and inside each stream at several of its keys."""
    keys = _all_keys(path)
    out: list[Half] = []
    with open_read_only(path) as db:
        for chunk in db.chunks("metadata"):
            for mkey, value in chunk:
                out.append(Half(mkey, True))
                version = stream_version(value)
                if version is None:
                    continue
                k = decode_metadata_key(mkey, cluster)
                raw = internal_prefix(k.namespace, k.user_key, version, k.slot)
                mine = [key for key in keys if key.startswith(raw)]
                out += [Half(mkey, True, mine[i]) for i in range(0, len(mine), max(1, len(mine) // 3))]
    return out[:: max(1, len(out) // 14)]  # each split costs a second process: a spread of them


@pytest.mark.parametrize("cluster", [False, True])
def test_any_split_gives_the_same_report(tmp_path: Path, cluster: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    path = adversarial_db(tmp_path / "db", cluster)
    one = _deep(path, workers=1)
    splits = _splits(path, cluster)
    assert len(splits) >= 14 and any(h.inside for h in splits) and any(not h.inside for h in splits)
    for split in splits:
        monkeypatch.setattr(scan_module, "_split_point", lambda *a, s=split, **k: s)
        assert _deep(path) == one, split


def test_split_inside_one_stream(tmp_path: Path) -> None:
    counts = bulk_load(tmp_path / "db", BulkSpec(streams=1, entries=6_000, groups=4, consumers=2, pel=30))
    one = _deep(tmp_path / "db", workers=1)
    assert one["summary"]["records_entry"] == counts["entries"]
    with open_read_only(tmp_path / "db") as db:
        ks = survey_keyspace(db, False)
    split = scan_module._split_point(ks, True, True, 2)
    raw = internal_prefix(DEFAULT_NS, b"stream:00000", BASE_VERSION, None)
    assert split is not None and split.inside is not None
    assert split.inside.startswith(raw) and len(split.inside) == len(raw) + 16  # among the entries
    seen: list[int] = []
    absorb = scan_module.WalkResult.absorb

    def noting(self, later):
        seen.append(later.worker_peak_kib)
        return absorb(self, later)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scan_module.WalkResult, "absorb", noting)
        assert _deep(tmp_path / "db", workers=2) == one
    assert len(seen) == 1 and seen[0] > 0  # the second process did the work (no fallback)
    # legacy region, 0xFF*8 region of the same stream
    with pytest.MonkeyPatch.context() as mp:
        for inside in (raw + u64(9), raw + u64(9) + b"group-001", raw + b"\xff" * 8, raw + b"\xff" * 8 + b"\x03"):
            half = Half(split.at, True, inside)
            mp.setattr(scan_module, "_split_point", lambda *a, s=half, **k: s)
            assert _deep(tmp_path / "db") == one


def test_split_point_only_for_large_plain_deep_scans(tmp_path: Path) -> None:
    bulk_load(tmp_path / "db", BulkSpec(streams=3, entries=1_000, groups=2, consumers=1, pel=4))
    with open_read_only(tmp_path / "db") as db:
        ks = survey_keyspace(db, False)

    assert scan_module._split_point(ks, True, True, None) is None  # small
    assert scan_module._split_point(ks, False, True, 2) is None  # fast scan
    assert scan_module._split_point(ks, True, False, 2) is None  # check's analyzer keeps one process
    assert scan_module._split_point(ks, True, True, 1) is None
    assert scan_module._split_point(ks, True, True, 2) is not None


def test_failing_second_process_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bulk_load(tmp_path / "db", BulkSpec(streams=4, entries=2_000, groups=3, consumers=1, pel=12))
    one = _deep(tmp_path / "db", workers=1)
    monkeypatch.setattr(sharded_module.sys, "executable", "/bin/false")
    assert _deep(tmp_path / "db", workers=2) == one
