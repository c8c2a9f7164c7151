"""stats of many keys in two processes reports what one process reports.

The subkey families are read in two parts cut at a user key's prefix; the second
process's counts, garbage, family totals and top keys join ours.  Wherever the cut (every
mark of the metadata pass), with filters, in cluster mode, and when the second process
fails, the report is the single process's.  (kvfix.analysis.stats_parts)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from stats_inspect_data import rich_database

import kvfix.analysis.stats as stats_module
import kvfix.analysis.stats_parts as stats_parts
from kvfix.analysis.stats import collect_stats
from kvfix.analysis.stats_model import StatsFilter
from kvfix.codec.keys import key_prefix
from kvfix.render.stats_report import stats_document, stats_json
from kvfix.store.opening import open_read_only

NOW = 1_795_775_557_000


def _report(path: Path, cluster: bool, filters: StatsFilter | None = None, top_n: int = 3) -> str:
    with open_read_only(path) as db:
        r = collect_stats(db, cluster=cluster, filters=filters, top_n=top_n, now_ms=NOW)
    return json.dumps(stats_json(r), sort_keys=False) + repr(stats_document(r))


def _prefixes(path: Path, cluster: bool) -> list[bytes]:
    from kvfix.codec.keys import decode_metadata_key

    with open_read_only(path) as db:
        keys = [decode_metadata_key(k, cluster) for chunk in db.chunks("metadata") for k, _ in chunk]
    return sorted({key_prefix(m.namespace, m.user_key, m.slot) for m in keys})


FILTERS = [None, StatsFilter(namespace=b"tenant_a"), StatsFilter(types=frozenset({"hash", "zset"}))]


@pytest.mark.parametrize("cluster", [False, True])
def test_a_cut_at_any_key_reports_what_one_process_reports(tmp_path: Path, monkeypatch, cluster: bool) -> None:  # type: ignore[no-untyped-def]
    path = rich_database(tmp_path / "db", cluster)
    monkeypatch.setattr(stats_module, "stats_cut", lambda marks, keys: None)
    one = {i: _report(path, cluster, f) for i, f in enumerate(FILTERS)}
    seen: list[object] = []
    real = stats_parts.wait_worker
    monkeypatch.setattr(stats_parts, "wait_worker", lambda *a: seen.append(real(*a)) or seen[-1])
    cuts = _prefixes(path, cluster)
    for cut in [*cuts[:: max(1, len(cuts) // 6)], cuts[-1], b"\x00", b"\xff" * 8]:
        monkeypatch.setattr(stats_module, "stats_cut", lambda marks, keys, cut=cut: cut)
        for i, f in enumerate(FILTERS):
            assert _report(path, cluster, f) == one[i], (cut, f)
    assert seen and all(later is not None for later in seen)  # the second process did its part


def test_a_failing_second_process_changes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = rich_database(tmp_path / "db")
    monkeypatch.setattr(stats_module, "stats_cut", lambda marks, keys: None)
    one = _report(path, False)
    cuts = _prefixes(path, False)
    monkeypatch.setattr(stats_module, "stats_cut", lambda marks, keys: cuts[len(cuts) // 2])

    def failing(job: Path, out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(stats_parts, "start_worker", failing)
    assert _report(path, False) == one


def test_the_cut_comes_from_the_marks_in_subkey_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Keys sorted by length first (as the subkey families sort them); none with one process."""
    from kvfix.codec.keys import MetadataKey

    marks = stats_parts.Marks()
    for i in range(5000):
        marks.add(MetadataKey(b"ns", b"k" * (1 + i % 7) + b"%05d" % i, None))
    assert marks.stride == 4 and stats_parts.MARKS <= len(marks.sample()) < 2 * stats_parts.MARKS
    monkeypatch.setenv("KVFIX_WORKERS", "2")
    cut = stats_parts.stats_cut(marks.sample(), 5000)
    prefixes = sorted({key_prefix(m.namespace, m.user_key, m.slot) for m in marks.sample()})
    assert cut in prefixes and 0.45 < prefixes.index(cut) / len(prefixes) < 0.8
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    assert stats_parts.stats_cut(marks.sample(), 10**6) is None


def test_kvfix_stats_agrees_with_and_without_a_second_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = rich_database(tmp_path / "db")
    out = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("KVFIX_WORKERS", workers)
        res = run_cli("stats", path, "--format", "json")
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        doc.pop("now_ms", None)
        out[workers] = doc
    assert out["1"] == out["2"]
