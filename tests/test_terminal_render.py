"""Whole kvfix processes on a pseudo-terminal: tables fit the width, severities in colour.

Each command runs as an operator runs it: ``python -m kvfix`` with stdin and stdout on a
pty whose window size (TIOCSWINSZ) is 80 or 200 columns, ``COLUMNS`` saying the same,
``TERM=xterm-256color``, and neither ``NO_COLOR`` nor ``FORCE_COLOR`` inherited (stderr
goes to a file, progress bars are off). All runs of the module start at once, in
parallel, the first time a test needs one (:func:`runs`).

Golden output: ``tests/golden/<command>-<fixture>.txt`` is the 80-column terminal output
with ANSI codes stripped, trailing spaces removed and what legitimately varies replaced
(:func:`normalise`: the data directory's path becomes ``<PATH>``; UTC timestamps like
``20261201T231011Z``, ISO times and durations like ``0.42s``, should a report print them,
become ``<UTC>``, ``<TIME>`` and ``<DURATION>``). Anything else that changes fails the
test with a diff. The fixtures are unpacked under a ``mkdtemp`` directory in /tmp, whose
path has the same length on every run, so lines that name it wrap the same way.

After an intended change of a report, regenerate them and review the diff::

    KVFIX_UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_terminal_render.py
    git diff tests/golden/
"""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import manifest, unpack
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("KVFIX_UPDATE_GOLDEN"))

FIXTURES = ("legacy-basic", "upgraded-mixed")
COMMANDS = {"scan": ["scan"], "migrate-dry-run": ["migrate", "--dry-run"], "check": ["check"]}
#: README's exit codes: 1 for findings at or above --fail-on (both fixtures hold legacy
#: records); a dry run reports its plan, conflicts included, and exits 0.
EXIT = {"scan": 1, "check": 1, "migrate-dry-run": 0}
WIDTHS = (80, 200)

#: Modes of one command: on the terminal at a width, with NO_COLOR, or with stdout a pipe.
TTY80, TTY200, NO_COLOR, PIPE, PIPE_RICH, JSON = "tty80", "tty200", "no-color", "pipe", "pipe-rich", "json"
OTHER_FORMATS = ("plain", "markdown", "json")  # on the terminal too: never coloured

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
ID = re.compile(r"(?<![\d-])\d+-\d+(?![\d-])")
BOX = "│┃"


@dataclass(frozen=True)
class Run:
    code: int
    out: str  # as written, "\r\n" turned back into "\n"
    err: str

    @property
    def text(self) -> str:
        return ANSI.sub("", self.out)


def _env(columns: int | None, **extra: str) -> dict[str, str]:
    drop = {"NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE", "COLUMNS", "LINES"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(TERM="xterm-256color", KVFIX_NO_PROGRESS="1", **extra)
    if columns is not None:
        env.update(COLUMNS=str(columns), LINES="50")
    return env


def run_tty(args: list[str], columns: int, **extra: str) -> Run:
    """kvfix with stdin and stdout on a fresh pty of ``columns`` columns; stderr to a file."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    chunks: list[bytes] = []
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kvfix", *args],
                stdin=slave,
                stdout=slave,
                stderr=err,
                env=_env(columns, **extra),
                start_new_session=True,
            )
        finally:
            os.close(slave)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1.0)
                if not ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the process closed its terminal
                    break
                if not data:
                    break
                chunks.append(data)
            else:
                proc.kill()
        finally:
            os.close(master)
        code = proc.wait(timeout=60)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return Run(code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n"), stderr)


def run_pipe(args: list[str], **extra: str) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "kvfix", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(None, **extra),
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """The fixtures unpacked under /tmp/kvfix-tty-XXXXXXXX (one path length on every run)."""
    base = Path(tempfile.mkdtemp(prefix="kvfix-tty-", dir="/tmp"))
    try:
        for name in FIXTURES:
            unpack(name, base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _jobs(root: Path) -> dict[tuple[str, ...], tuple]:
    jobs: dict[tuple[str, ...], tuple] = {}
    for fixture in FIXTURES:
        path = str(root / fixture)
        for command, argv in COMMANDS.items():
            args = [argv[0], path, *argv[1:]]
            jobs[command, fixture, TTY80] = (run_tty, args, 80)
            jobs[command, fixture, TTY200] = (run_tty, args, 200)
            jobs[command, fixture, NO_COLOR] = (run_tty, args, 80, {"NO_COLOR": "1"})
            jobs[command, fixture, PIPE] = (run_pipe, args)
            jobs[command, fixture, PIPE_RICH] = (run_pipe, [*args, "--format", "rich"])
            jobs[command, fixture, JSON] = (run_pipe, [*args, "--format", "json"])
    scan = ["scan", str(root / "legacy-basic")]
    for fmt in OTHER_FORMATS:
        jobs["scan", "legacy-basic", f"tty80-{fmt}"] = (run_tty, [*scan, "--format", fmt], 80)
    return jobs


@pytest.fixture(scope="module")
def runs(root: Path) -> dict[tuple[str, ...], Run]:
    """Every process this module looks at, run in parallel (each costs ~0.5 s)."""

    def call(job: tuple) -> Run:
        func, *args = job
        extra = args.pop() if isinstance(args[-1], dict) else {}
        return func(*args, **extra)

    jobs = _jobs(root)
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 4)) as pool:
        results = dict(zip(jobs, pool.map(call, jobs.values()), strict=True))
    return results


CASES = [(c, f) for f in FIXTURES for c in COMMANDS]


def colours(out: str) -> set[str]:
    """The colour parameters (30-37, 90-97, 38;...) of every SGR sequence in ``out``."""
    found = set()
    for m in SGR.finditer(out):
        params = m.group(1).split(";")
        for i, p in enumerate(params):
            if p in ("38", "48"):
                found.add(";".join(params[i:]))
                break
            if p.isdigit() and (30 <= int(p) <= 37 or 40 <= int(p) <= 47 or 90 <= int(p) <= 97):
                found.add(p)
    return found


def coloured(out: str, word: str, colour: str) -> bool:
    """``word`` printed in SGR colour ``colour`` (e.g. 31, red) somewhere in ``out``."""
    pattern = rf"\x1b\[(?:[0-9;]*;)?{colour}(?:;[0-9;]*)?m(?:\x1b\[[0-9;]*m)*{re.escape(word)}"
    return re.search(pattern, out) is not None


def normalise(text: str, root: Path) -> str:
    """Terminal text as the golden files keep it (see the module's docstring)."""
    text = ANSI.sub("", text)
    for path in {str(root.resolve()), str(root)}:
        text = text.replace(path, "<PATH>")
    text = re.sub(r"\b\d{8}T\d{6}Z\b", "<UTC>", text)
    text = re.sub(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?", "<TIME>", text)
    text = re.sub(r"\b\d+\.\d+ ?m?s\b", "<DURATION>", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def manifest_ids(fixture: str) -> set[str]:
    return set(ID.findall(json.dumps(manifest(fixture))))


# --- fitting ---------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_output_fits_the_terminal(runs, command, fixture, width):
    run = runs[command, fixture, TTY80 if width == 80 else TTY200]
    assert run.code == EXIT[command], run.err
    assert run.err == ""
    lines = run.text.splitlines()
    assert len(lines) > 3, run.text
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, "\n".join(too_wide)
    for line, following in itertools.pairwise(lines):
        # a digit run ending a line, -<digits> starting the next: an id cut in two
        assert not (re.search(r"\d$", line.rstrip()) and re.match(r"\s*-\d", following)), (line, following)
        assert not (re.search(r"\d-$", line.rstrip()) and re.match(r"\s*\d", following)), (line, following)
    # the same within a table's cell: no id of the report is folded over a cell's lines
    ids = set(ID.findall(runs[command, fixture, JSON].out))
    for upper, lower in cell_lines(lines):
        tail, head = re.search(r"\d[\d-]*$", upper), re.match(r"-?\d[\d-]*", lower)
        if tail and head and len(joined := tail.group() + head.group()) >= 5:
            assert not any(joined in i for i in ids), (upper, lower)


def cell_lines(lines: list[str]) -> Iterator[tuple[str, str]]:
    """Within a table, each cell's text on a line with the same cell's text on the next line."""
    for line, following in itertools.pairwise(lines):
        rules = [i for i, c in enumerate(line) if c in BOX]
        if len(rules) >= 2 and rules == [i for i, c in enumerate(following) if c in BOX]:
            for start, end in itertools.pairwise(rules):
                yield line[start + 1 : end].strip(), following[start + 1 : end].strip()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_ids_stay_whole(runs, command, fixture, width):
    """Every id of the fixture that the command reports (JSON) and prints (plain) shows whole on the terminal."""
    reported = set(ID.findall(runs[command, fixture, JSON].out)) & manifest_ids(fixture)
    plain = set(ID.findall(runs[command, fixture, PIPE].out)) & reported
    text = runs[command, fixture, TTY80 if width == 80 else TTY200].text
    assert plain <= set(ID.findall(text)), sorted(plain - set(ID.findall(text)))
    runs_of_digits = set(re.findall(r"\d{5,}", text))
    for entry_id in reported:
        ms = entry_id.split("-")[0]
        if ms == "0":
            continue
        # no piece of an id's milliseconds stands alone (what a column folding it leaves)
        assert not {d for d in runs_of_digits if d != ms and d in ms}, (entry_id, runs_of_digits)
        # the id's milliseconds never show without their sequence number after them
        for m in re.finditer(rf"(?<!\d){ms}(?!\d)", text):
            assert re.match(r"-\d", text[m.end() :]), text[max(0, m.start() - 80) : m.end() + 80]


def test_ids_are_in_the_report_at_all(runs):
    """The id checks above check something: the reports print ids of the fixtures."""
    for fixture in FIXTURES:
        ids = manifest_ids(fixture)
        assert set(ID.findall(runs["scan", fixture, TTY80].text)) & ids
        assert set(ID.findall(runs["check", fixture, TTY80].text)) & ids


# --- colour ----------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_colour_on_a_terminal(runs, command, fixture):
    out = runs[command, fixture, TTY80].out
    assert "\x1b[" in out
    if command != "migrate-dry-run":  # a plan has no severities: bold titles only
        assert coloured(out, "error", "31"), out  # red: the error severity
        assert coloured(out, "warning", "33"), out  # yellow
        assert not coloured(out, "info", "31") and not coloured(out, "info", "33")


@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_no_colour_in_a_pipe(runs, command, fixture):
    """The same command with stdout a pipe: plain text (the default there), and rich asked for: no ANSI either."""
    for mode in (PIPE, PIPE_RICH, JSON):
        run = runs[command, fixture, mode]
        assert run.code == EXIT[command], run.err
        assert "\x1b" not in run.out, mode
    assert "┏" in runs[command, fixture, PIPE_RICH].out  # it was rich
    assert "┏" not in runs[command, fixture, PIPE].out


@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_no_colour_with_no_color(runs, command, fixture):
    run = runs[command, fixture, NO_COLOR]
    assert run.code == EXIT[command]
    assert colours(run.out) == set(), sorted(colours(run.out))
    assert run.text == runs[command, fixture, TTY80].text  # the same text, only without colour


@pytest.mark.parametrize("fmt", OTHER_FORMATS)
def test_no_colour_in_other_formats_on_a_terminal(runs, fmt):
    run = runs["scan", "legacy-basic", f"tty80-{fmt}"]
    assert run.code == 1
    assert "\x1b" not in run.out
    if fmt == "json":
        assert json.loads(run.out)["summary"]["errors"] > 0


# --- golden output ---------------------------------------------------------------------


@pytest.mark.parametrize(("command", "fixture"), CASES)
def test_golden_output_at_80_columns(runs, root, command, fixture):
    got = normalise(runs[command, fixture, TTY80].out, root)
    assert "<PATH>" in got
    golden = GOLDEN / f"{command}-{fixture}.txt"
    if UPDATE or not golden.exists():
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(got)
        if not UPDATE:
            pytest.fail(f"{golden} did not exist: written; review it and commit it")
        return
    want = golden.read_text()
    if got != want:
        import difflib

        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(golden), "terminal"))
        pytest.fail(f"80-column output changed (KVFIX_UPDATE_GOLDEN=1 regenerates, see the docstring):\n{diff}")


def test_normalise_keeps_what_does_not_vary(tmp_path):
    text = f"\x1b[1mkvfix scan {tmp_path}/db\x1b[0m  \nbackup 20261201T231011Z in 0.42s\n2.10.0 1795775557168-3\n"
    assert normalise(text, tmp_path) == "kvfix scan <PATH>/db\nbackup <UTC> in <DURATION>\n2.10.0 1795775557168-3\n"


# --- the layout itself, in process (fast) -----------------------------------------------


def render_rich(doc, width: int, monkeypatch) -> str:
    from kvfix.render.document import render

    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = io.StringIO()
    render(doc, "rich", out)
    return out.getvalue()


def hostile_document():
    from kvfix.render.document import Document

    doc = Document("kvfix test \x1b[2J[bold]title[/bold]")
    ids = [f"17000000000{i:02d}-{i}" for i in range(12)]
    rows = [
        [
            "__namespace",
            f"stream-{'x' * 40}-{i}" if i % 3 == 0 else f"[red]k{i}[/red]",
            "legacy",
            ids[i],
            f"{i * 1234567:,}",
            "2/2/3",
            "ok",
            f"{i} (error)" if i % 2 else f"{i} (warning)",
            "キー" * (i + 1),
            "ab" * 40,
            f"alias ids {ids[i]}..{ids[-1]}, inside XRANGE - + and XREAD 0",
        ]
        for i in range(12)
    ]
    headers = ["namespace", "key", "layout", "last_delivered_id", "bytes", "g/c/pel", "invariants"]
    headers += ["findings", "wide", "hex", "message"]
    doc.line("findings: 3 errors, 1 warning, 0 infos")
    doc.table("Wide (12)", headers, rows, "… and 5 more streams: --limit 0 for all, or --format json")
    doc.table("Empty (0)", ["a", "b"], [])
    doc.table("Severities (2)", ["severity", "code"], [["error", "X"], ["error", "Y"]])
    return doc, ids


@pytest.mark.parametrize("width", [30, 50, 80, 120, 200])
def test_layout_fits_hostile_tables(monkeypatch, width):
    doc, ids = hostile_document()
    out = render_rich(doc, width, monkeypatch)
    assert "\x1b" not in out  # not a terminal: no colour, and data escaped
    assert "\\x1b[2J[bold]title[/bold]" in out  # markup from data stays literal
    lines = out.splitlines()
    assert all(cell_len(line) <= width for line in lines), "\n".join(line for line in lines if cell_len(line) > width)
    if width >= 50:  # an id fits any column then
        assert set(ids) <= set(ID.findall(out))
        for i in range(12):
            assert f"{i * 1234567:,}" in out
    assert "Empty (0): none" in out and "┃ a" not in out
    assert "[red]k1[/red]" in out or width < 80


def test_layout_colours_severity_words(monkeypatch):
    doc, _ = hostile_document()
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NO_COLOR", raising=False)
    from kvfix.render.document import render

    out = io.StringIO()
    render(doc, "rich", out)
    raw = out.getvalue()
    assert coloured(raw, "3 errors", "31") and coloured(raw, "1 warning", "33")
    assert coloured(raw, "error", "31") and coloured(raw, "warning", "33")
    assert "\x1b[31m0 infos" not in raw
    assert "[red]k1[/red]" in raw  # data never becomes markup


TOKENS = [
    "a",
    "name",
    "-",
    "1",
    "42",
    ".",
    "..",
    "/",
    "=",
    ",",
    " ",
    "  ",
    "_",
    "キー",
    "e\u0301",
    "[red]",
    "worker-1=2",
]


@settings(max_examples=80, deadline=None)
@given(
    width=st.sampled_from([24, 40, 80, 200]),
    headers=st.lists(st.lists(st.sampled_from(TOKENS), max_size=6).map("".join), min_size=1, max_size=12),
    cells=st.lists(
        st.lists(st.sampled_from([*TOKENS, "1795775557168-3", "ab" * 20, "x" * 45]), max_size=8), max_size=6
    ),
)
@example(width=40, headers=["", "", ""], cells=[[" ", "1795775557168-3"]])  # blanks before an id (found by CI)
def test_layout_fits_any_table(width, headers, cells):
    """Any table: every line within its column, parts within the terminal, ids whole, no column lost."""
    from kvfix.render.terminal import cell_lines, fit, table_width

    rows = [[" ".join(c[i:] + c[:i]) for i in range(len(headers))] for c in cells]  # an id as a word of its own
    layout = fit(headers, rows, width)
    for part in layout.parts:
        assert table_width(part.widths) <= width or len(part.columns) == 1
        for i, w in zip(part.columns, part.widths, strict=True):
            for row in rows:
                lines = cell_lines(row[i], w)
                assert all(cell_len(line) <= w for line in lines)
                if width >= 40 and "1795775557168-3" in row[i]:
                    assert "1795775557168-3" in "\n".join(lines)
    shown = {i for p in layout.parts for i in p.columns}
    assert len(shown) + len(layout.constant) == len(headers)  # every column shown, in a part or folded
