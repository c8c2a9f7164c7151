"""Benchmark: kvfix stats on 1M small keys (bounded memory: top-N by heap, streaming joins).

    python benchmarks/stats_1m.py [--keys 1000000] [--dir /tmp/kvfix-bench-stats]

Writes a new database with the codec's encoders (a third strings, a third 2-field
hashes, a third 3-member zsets, plus some dead-version garbage), runs ``kvfix stats``
in a child process and prints wall time and the child's peak RSS.  Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kvfix.codec.keys import InternalKey, MetadataKey
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.codec.types import ZsetScoreKey, encode_zset_member_value
from kvfix.store.opening import create_database

NS = b"__namespace"
BASE_VERSION = 1_795_775_557_000_000 << 11


def build(path: Path, keys: int, batch_records: int = 200_000) -> int:
    written = 0
    with create_database(path) as db:
        meta_cf, default_cf, score_cf = "metadata", "default", "zset_score"
        batch: list = []
        pending = 0
        for i in range(keys):
            key = b"key:%09d" % i
            version = BASE_VERSION + (i << 11)
            kind = i % 3
            if kind == 0:
                batch.append(
                    (
                        meta_cf,
                        MetadataKey(NS, key).encode(),
                        Metadata(KeyType.STRING, True, 0, None, None, tail=b"v%d" % i).encode(),
                    )
                )
                pending += 1
            elif kind == 1:
                batch.append(
                    (meta_cf, MetadataKey(NS, key).encode(), Metadata(KeyType.HASH, True, 0, version, 2).encode())
                )
                for f in (b"a", b"b"):
                    batch.append((default_cf, InternalKey(NS, key, version, f).encode(), b"x" * (i % 50)))
                pending += 3
                if i % 100 == 1:  # a dead version waiting for compaction
                    batch.append((default_cf, InternalKey(NS, key, version - 1, b"old").encode(), b"stale"))
                    pending += 1
            else:
                batch.append(
                    (meta_cf, MetadataKey(NS, key).encode(), Metadata(KeyType.ZSET, True, 0, version, 3).encode())
                )
                for j, m in enumerate((b"m1", b"m2", b"m3")):
                    score = float(i % 1000 + j)
                    batch.append(
                        (default_cf, InternalKey(NS, key, version, m).encode(), encode_zset_member_value(score))
                    )
                    batch.append(
                        (score_cf, InternalKey(NS, key, version, ZsetScoreKey(score, m).encode()).encode(), b"")
                    )
                pending += 7
            if pending >= batch_records:
                db.write(batch, sync=False)
                written += pending
                batch, pending = [], 0
        db.write(batch, sync=False)
        written += pending
        db.flush_all()
    return written


def _run_measured(cmd: list[str], out_path: Path) -> tuple[int, float, int]:
    """Run cmd in a child; (exit status, seconds, that child's own peak RSS in KiB via wait4)."""
    t0 = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "KVFIX_NO_PROGRESS": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/kvfix-bench-stats"))
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only:
        records = build(args.dir / "db", args.keys)
        print(f"{records} records")
        return
    if args.dir.exists():
        shutil.rmtree(args.dir)
    log = Path(tempfile.mkstemp(prefix="kvfix-bench-", suffix=".out")[1])
    # Build in a child too: a forked child's peak RSS would otherwise start at the builder's.
    code, secs, _ = _run_measured(
        [sys.executable, __file__, "--build-only", "--keys", str(args.keys), "--dir", str(args.dir)], log
    )
    if code != 0:
        sys.exit(log.read_text())
    print(f"built {args.keys:,} keys ({log.read_text().split()[0]} records) in {secs:.1f} s")
    code, secs, peak_kib = _run_measured(
        [sys.executable, "-m", "kvfix", "stats", str(args.dir), "--format", "json", "--top", "20"], log
    )
    if code != 0:
        sys.exit(log.read_text()[-2000:])
    print(f"kvfix stats: {secs:.1f} s, {args.keys / secs:,.0f} keys/s, peak RSS {peak_kib / 1024:.0f} MiB")
    log.unlink()
    if not args.keep:
        shutil.rmtree(args.dir)


if __name__ == "__main__":
    main()
