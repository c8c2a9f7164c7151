"""kvfix over a matrix of database shapes, measured as operators run it.

    python benchmarks/shapes.py                    # quick sizes (a few minutes on 2 cores)
    python benchmarks/shapes.py --large            # the big end (up to ~30 minutes)
    python benchmarks/shapes.py --only huge-pel --size 1000000
    python benchmarks/shapes.py --keep DIR --json results.json --repeat 3

Shapes (``--only`` takes the name or its number; ``--size`` (alias ``--scale``) replaces the
number in brackets, with or without --large):

1. ``entries``: 10 streams x [100,000] entries, 100 legacy groups (1 consumer) and 1,000 PEL
   records per stream (kvfix.synth.bulk_load's default); --large: 1,000,000 entries.
2. ``small-streams``: [20,000] streams of 10 entries, 1 legacy group, 1 consumer, 1 PEL record
   each; --large: 100,000 and 1,000,000 streams.
3. ``huge-pel``: 1 stream, 10 legacy groups (1 consumer each), [100,000] PEL records (a tenth
   as many entries; each group's PEL points at the same entries, as Redis allows); --large: 1M, 10M.
4. ``many-groups``: 1 stream, [1,000] legacy groups with 1 consumer and 2 PEL records each;
   --large: 10,000.
5. ``mixed``: x[1] of: 2 streams x 10,000 entries (10 groups), 1,000 small streams, one
   10,000-PEL stream, one 100-group stream, and 10,000 strings/hashes/zsets; --large: x10.

Every database is generated in a child process (batches of 200,000 encoded records). Then,
for each shape:

- R: one raw rocksdict pass (``sum(len(c) for c in db.chunks(cf))`` after
  ``open_read_only``), each column family in a fresh process: ``stream`` (R) and the four
  families stats reads (R4 = stream + default + metadata + zset_score), the fastest of
  three.  The open is timed apart and not part of R.
- P, the Python floor: the least a per-stream reader written in Python does, in one fresh
  process, read as R is: every metadata record looked at and each stream's decoded (kvfix's
  codec, its fast path), and one interpreter step per stream family record; the fastest
  of three.  Where a command misses its time target, its time over P is kvfix's own
  per-stream work (classifying, findings, reports), not Python's; P reads every entry,
  so on entries-dominated shapes it is above what the fast walk needs.
- Each command as a whole ``python -m kvfix ...`` process with KVFIX_NO_PROGRESS=1, stdout
  to a file, stderr captured: scan, check, stats (each plain and ``--format json``),
  ``migrate --dry-run``, and ``migrate --yes --no-backup`` (plain and JSON), each real
  migrate on a fresh copy (shutil.copytree + os.sync() before timing).  Wall time from the
  driver, peak RSS from ``/usr/bin/time -f "%e %M"`` (os.wait4's ru_maxrss, the fallback,
  may start at the driver's own RSS) and the process tree's summed RSS sampled every 0.2 s
  (shown as "tree" when worker processes add to it), output bytes and lines, exit code.  A
  command still running after ``--timeout`` (600 s, --large 1800 s) is killed and recorded
  as TIMEOUT; one whose tree grows past ``--max-rss-mb`` (8 GB, or half the RAM if less) is
  killed and recorded as KILLED-RSS, so a shape that does not fit does not take the machine
  down.  Each command runs once (as an operator would); on a shared, noisy machine
  ``--repeat N`` reports the fastest of N runs (and the largest RSS of them).

Targets (PASS/FAIL per command; exit 0 and 1 count as "ran", anything else misses):

- time: scan <= 2R + 0.5 s; check <= 3R + 0.5 s; stats <= 3 R4 + 0.5 s; a real migrate
  >= 100,000 legacy records/s (group + consumer + PEL records, from the generator) after
  the same 0.5 s start-up allowance, i.e. wall <= legacy / 100,000 + 0.5 s (the table also
  shows the plain rate, legacy / wall).  ``migrate --dry-run`` has no time target.
- peak RSS (the larger of the largest process's and the sampled tree's): scan, check,
  stats <= 150 MB; migrate (dry-run included) <= 400 MB.
- output: default (plain) output <= 300 lines; JSON <= 4 KB per stream + 2 KB per group.

Prints Markdown (the machine, the start-up time of ``python -m kvfix --version``, one table
per shape, the misses) on stdout and progress on stderr; ``--json FILE`` is rewritten after
every shape.  ``--keep DIR`` generates into DIR and keeps the databases and every
command's output (a database already there with its counts.json is reused).  Exit status:
0 when every target is met, 1 when any is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shape_data import generate
from shape_model import ALLOWANCE_S, COMMANDS, SHAPES, STATS_CFS, Command, Run, Shape, ShapeResult, find_shape
from shape_report import judge, machine, shape_report, summary, to_json

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TIME_BIN = "/usr/bin/time"


# --- generation (child process) ------------------------------------------------------------


def child_raw(data_dir: str, cf: str) -> dict[str, float]:
    from kvfix.store.opening import open_read_only

    t0 = time.perf_counter()
    with open_read_only(data_dir) as db:
        t1 = time.perf_counter()
        records = sum(len(c) for c in db.chunks(cf))
        t2 = time.perf_counter()
    return {"records": records, "open": t1 - t0, "seconds": t2 - t1}


def child_floor(data_dir: str) -> dict[str, float]:
    from kvfix.codec.metadata import decode_metadata, stream_version
    from kvfix.store.opening import open_read_only

    t0 = time.perf_counter()
    with open_read_only(data_dir) as db:
        t1 = time.perf_counter()
        streams = records = 0
        for chunk in db.chunks("metadata"):
            for _, value in chunk:
                if stream_version(value) is not None:
                    decode_metadata(value)
                    streams += 1
        for chunk in db.chunks("stream"):
            for _ in chunk:
                records += 1
        t2 = time.perf_counter()
    return {"streams": streams, "records": records, "open": t1 - t0, "seconds": t2 - t1}


def child_main(args: list[str]) -> None:
    if args[0] == "generate":
        t = time.perf_counter()
        counts: dict[str, Any] = generate(args[1], int(args[2]), Path(args[3]))
        counts["generate_s"] = time.perf_counter() - t
        print(json.dumps(counts))
    elif args[0] == "raw":
        print(json.dumps(child_raw(args[1], args[2])))
    elif args[0] == "floor":
        print(json.dumps(child_floor(args[1])))
    else:
        raise SystemExit(f"unknown child phase {args[0]!r}")


# --- measuring (driver) --------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "KVFIX_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}


def session_rss_mb(sid: int, skip: int | None) -> float:
    """The summed RSS of the live processes of session ``sid`` (the command and its workers)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == skip:
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[3]) != sid:
                continue
            total += int(Path(f"/proc/{name}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


class Guard(threading.Thread):
    """Samples a command's process tree; kills its session past the timeout or the RSS guard."""

    def __init__(self, pid: int, timeout: float, max_rss_mb: float, skip: int | None) -> None:
        super().__init__(daemon=True)
        self.pid, self.timeout, self.max_rss_mb, self.skip = pid, timeout, max_rss_mb, skip
        self.done = threading.Event()
        self.reason: str | None = None
        self.peak_mb = 0.0

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.done.wait(0.2):
            rss = session_rss_mb(self.pid, self.skip)
            self.peak_mb = max(self.peak_mb, rss)
            if time.monotonic() - t0 > self.timeout:
                self.reason = "TIMEOUT"
            elif rss > self.max_rss_mb:
                self.reason = f"KILLED-RSS>{self.max_rss_mb:.0f}MB"
            if self.reason:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)  # the session of the process started here
                return


@dataclass(frozen=True)
class Limits:
    timeout: float  # seconds per command (and per generation)
    max_rss_mb: float  # the Guard kills a command whose process tree grows past this
    repeat: int = 1  # runs per command; the fastest is reported


def run_measured(cmd: list[str], out_path: Path, limits: Limits) -> Run:
    """Run ``cmd`` with stdout to ``out_path`` (stderr beside it), under a Guard."""
    timing = out_path.with_name(out_path.name + ".time")
    err_path = out_path.with_name(out_path.name + ".err")
    use_time = os.access(TIME_BIN, os.X_OK)
    full = [TIME_BIN, "-f", "%e %M", "-o", str(timing), *cmd] if use_time else cmd
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=_env(), start_new_session=True)
        guard = Guard(proc.pid, limits.timeout, limits.max_rss_mb, proc.pid if use_time else None)
        guard.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        guard.done.set()
        guard.join()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    rss_kb = float(usage.ru_maxrss) if guard.reason is None else 0.0  # killed: only the tree's samples
    if use_time and guard.reason is None:
        rss_kb = float(timing.read_text().split()[-1])  # after "Command exited with non-zero status N"
    data = out_path.read_bytes()
    return Run(
        guard.reason or code,
        wall,
        rss_kb / 1024,
        len(data),
        data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0),
        err_path.read_text(errors="replace")[-1500:],
        guard.peak_mb,
    )


def run_command(command: Command, data_dir: Path, out_dir: Path, limits: Limits) -> Run:
    target = data_dir
    if command.copy:
        target = data_dir.with_name(data_dir.name + ".migrate-copy")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(data_dir, target)
        os.sync()  # the copy's writeback would otherwise compete with migrate's synced writes
    name = command.label.replace(" ", "_").replace("-", "")
    argv = [sys.executable, "-m", "kvfix", command.args[0], str(target), *command.args[1:]]
    try:
        return run_measured(argv, out_dir / f"{name}.out", limits)
    finally:
        if command.copy:
            shutil.rmtree(target, ignore_errors=True)


def child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run a phase of this file in a fresh process; its JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=_env(), timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(shape: Shape, size: int, root: Path, limits: Limits) -> tuple[Path, dict[str, Any]]:
    data_dir = root / f"{shape.name}-{size}"
    marker = data_dir / "counts.json"
    if marker.exists():
        _log(f"[{shape.name} {size:,}] reusing {data_dir}")
        return data_dir, json.loads(marker.read_text())
    shutil.rmtree(data_dir, ignore_errors=True)
    _log(f"[{shape.name} {size:,}] generating ...")
    counts = child(["generate", shape.name, str(size), str(data_dir / "db")], limits.timeout)
    marker.write_text(json.dumps(counts))
    _log(f"[{shape.name} {size:,}] generated in {counts['generate_s']:.1f} s")
    return data_dir, counts


def fastest(runs: list[Run]) -> Run:
    """The fastest run, with the largest RSS seen; a run that failed or was killed wins over all."""
    failed = [r for r in runs if r.exit not in (0, 1)]
    if failed:
        return failed[0]
    best = min(runs, key=lambda r: r.wall)
    best.rss_mb, best.tree_mb = max(r.rss_mb for r in runs), max(r.tree_mb for r in runs)
    return best


#: Runs of R and P per shape, the fastest kept: a floor should not move with the machine's noise.
FLOOR_RUNS = 3


def _fastest_child(args: list[str], timeout: float) -> dict[str, Any]:
    return min((child(args, timeout) for _ in range(FLOOR_RUNS)), key=lambda r: r["seconds"])


def measure(shape: Shape, size: int, root: Path, limits: Limits) -> ShapeResult:
    data_dir, counts = prepare(shape, size, root, limits)
    counts["legacy"] = counts["groups"] + counts["consumers"] + counts["pel"]
    raw = {cf: _fastest_child(["raw", str(data_dir), cf], limits.timeout) for cf in STATS_CFS}
    result = ShapeResult(shape.name, size, shape.describe(size), counts, _du(data_dir / "db"), raw)
    result.floor = _fastest_child(["floor", str(data_dir)], limits.timeout)
    out_dir = data_dir.with_name(data_dir.name + ".out")
    out_dir.mkdir(exist_ok=True)
    result.load = os.getloadavg()[0]
    for command in COMMANDS:
        _log(f"[{shape.name} {size:,}] {command.label} ...")
        run = fastest([run_command(command, data_dir, out_dir, limits) for _ in range(limits.repeat)])
        result.runs[command.label] = run
        result.misses[command.label] = judge(command, run, result)
        _log(f"    exit {run.exit}, {run.wall:.2f} s, {run.peak_mb:.0f} MB, {run.out_bytes:,} bytes")
    return result


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="the big end of every shape instead of the quick sizes")
    ap.add_argument("--keep", metavar="DIR", type=Path, help="generate into DIR and keep databases and outputs")
    ap.add_argument("--only", metavar="SHAPE", action="append", help="run this shape only (name or number; repeatable)")
    ap.add_argument("--size", "--scale", type=int, metavar="N", help="the shape's size instead of its quick/large ones")
    ap.add_argument("--json", metavar="FILE", type=Path, help="also write the results as JSON to FILE")
    ap.add_argument("--timeout", type=float, help="seconds per command before TIMEOUT (default 600, --large 1800)")
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    ap.add_argument(
        "--max-rss-mb",
        type=float,
        default=min(8192.0, ram_mb / 2),
        help="kill a command whose process tree passes this many MB (default: 8192 or half the RAM)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per command, the fastest reported (default 1)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        child_main(args.child)
        return
    limits = Limits(args.timeout or (1800.0 if args.large else 600.0), args.max_rss_mb, max(1, args.repeat))
    shapes = [find_shape(s) for s in args.only] if args.only else list(SHAPES)
    root = args.keep or Path(tempfile.mkdtemp(prefix="kvfix-shapes-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"# kvfix shapes benchmark\n\n{machine()}\n")
    start = run_measured([sys.executable, "-m", "kvfix", "--version"], root / "startup.out", limits)
    print(
        f"start-up: `python -m kvfix --version` takes {start.wall:.2f} s, {start.peak_mb:.0f} MB "
        f"(inside every command's wall time; the time targets allow {ALLOWANCE_S} s)\n",
        flush=True,
    )
    results: list[ShapeResult] = []
    try:
        for shape in shapes:
            for size in [args.size] if args.size else (shape.large if args.large else shape.quick):
                results.append(measure(shape, size, root, limits))
                if args.json:  # after every shape, so an interrupted --large run keeps what it measured
                    doc = {"machine": machine(), "startup": vars(start), "results": to_json(results)}
                    args.json.write_text(json.dumps(doc, indent=2))
                print(shape_report(results[-1]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("\n".join(summary(results)))
    sys.exit(1 if any(m for r in results for m in r.misses.values()) else 0)


if __name__ == "__main__":
    main()
