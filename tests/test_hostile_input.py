"""Bounded work and safe output on hostile input: globs, escapes, usage errors, names, paths.

Every test runs the real command line (in-process or as a process); the glob matcher is
also compared with a direct port of Redis' stringmatchlen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, run_kvfix, unpack
from hypothesis import given, settings
from hypothesis import strategies as st
from stats_inspect_data import Builder

from kvfix.analysis.glob import Glob
from kvfix.render.formats import UNSAFE_FORMATS, offered_formats
from kvfix.textsafe import unshow

# --- helpers ---------------------------------------------------------------------------------


def run_bytes(*args: str | bytes, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m kvfix ARGS`` with bytes output (what a terminal or a pipe really receives)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "CLICOLOR_FORCE")}
    env.update(KVFIX_NO_PROGRESS="1", TERM="dumb", COLUMNS="250")
    argv = [sys.executable, "-m", "kvfix", *(a if isinstance(a, bytes) else str(a) for a in args)]
    return subprocess.run(argv, capture_output=True, env=env, timeout=timeout)


def assert_usage_line(returncode: int, stdout: str, stderr: str, command: str, *needles: str) -> str:
    """Exit 2, nothing on stdout, exactly ``kvfix: usage: ... (see kvfix COMMAND --help)`` on stderr."""
    assert returncode == 2, (returncode, stdout, stderr)
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and stderr.endswith("\n"), stderr
    line = lines[0]
    assert line.startswith("kvfix: usage: "), line
    assert line.endswith(f"(see {command} --help)"), line
    assert "Traceback" not in line and "internal error" not in line and "Error:" not in line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def assert_safe_bytes(out: bytes) -> str:
    """No ESC, no raw non-UTF-8 byte: the output decodes strictly as UTF-8."""
    assert b"\x1b" not in out
    assert b"\xff" not in out and b"\xfe" not in out
    return out.decode("utf-8")  # strict


UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")

HOSTILE_NAMES = {
    "pipe": b"pipe|KEY",
    "markup": b"[bold red]x[/]",
    "esc": b"\x1b[31mred",
    "nonutf8": b"\xffraw\xfe",
    "html": b"<script>x</script>",
    "latex": b"a&b_c{d}%",
}


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory) -> Path:
    b = Builder()
    b.hash(b"plain", {b"f": b"v"})
    for name in HOSTILE_NAMES.values():
        b.hash(name, {b"f|" + name: b"v"})
    b.string(b"t|ns", b"v", ns=b"n|s\x1b]0;title\x07")
    return b.db.write(tmp_path_factory.mktemp("hostile") / "db")


# --- 1. --match: a linear-time Redis glob -----------------------------------------------------


def redis_stringmatch(p: bytes, s: bytes) -> bool:
    """A direct port of Redis' stringmatchlen_impl (nocase off), on bytes.

    Two documented choices, as Kvrocks' StringMatch: ranges compare bytes unsigned, and a
    pattern of only ``*`` matches the empty string.  Exponential: short inputs only.
    """

    def match(pi: int, si: int) -> bool:
        n = len(p)
        while pi < n and si < len(s):
            c = p[pi]
            if c == ord("*"):
                while pi + 1 < n and p[pi + 1] == ord("*"):
                    pi += 1
                if pi == n - 1:
                    return True
                return any(match(pi + 1, k) for k in range(si, len(s)))
            if c == ord("?"):
                si += 1
            elif c == ord("["):
                pi += 1
                negate = pi < n and p[pi] == ord("^")
                pi += negate
                hit = False
                while True:
                    if pi < n and p[pi] == ord("\\") and n - pi >= 2:
                        pi += 1
                        hit = hit or p[pi] == s[si]
                    elif pi < n and p[pi] == ord("]"):
                        break
                    elif pi >= n:  # unterminated: Redis steps back and closes the set here
                        pi -= 1
                        break
                    elif n - pi >= 3 and p[pi + 1] == ord("-"):
                        lo, hi = sorted((p[pi], p[pi + 2]))
                        pi += 2
                        hit = hit or lo <= s[si] <= hi
                    else:
                        hit = hit or p[pi] == s[si]
                    pi += 1
                if hit == negate:
                    return False
                si += 1
            else:
                if c == ord("\\") and n - pi >= 2:
                    pi += 1
                if p[pi] != s[si]:
                    return False
                si += 1
            pi += 1
        return si == len(s) and all(ch == ord("*") for ch in p[pi:])

    return match(0, 0)


PATTERN_BYTES = st.sampled_from(list(b"ab*?[]^-\\\x80\xff"))
DATA_BYTES = st.sampled_from(list(b"ab-]^\\*\x80\xff"))


@settings(max_examples=3000, deadline=None)
@given(
    pattern=st.lists(PATTERN_BYTES, max_size=10).map(bytes),
    data=st.lists(DATA_BYTES, max_size=8).map(bytes),
)
def test_glob_agrees_with_redis_stringmatchlen(pattern, data):
    assert Glob(pattern).match(data) == redis_stringmatch(pattern, data), (pattern, data)


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        (b"*", [b"", b"x"], []),
        (b"", [b""], [b"x"]),
        (b"[]x", [], [b"x", b"]x"]),  # [] is an empty set: nothing matches
        (b"[^]", [b"\x00", b"]"], [b"", b"ab"]),
        (b"[ab", [b"a", b"b"], [b"[ab", b"c"]),  # unterminated: closed at the end (Redis)
        (b"[z-a]", [b"m"], [b"-", b"A"]),  # a reversed range is swapped
        (b"[a-]x]", [b"^", b"x"], [b"]x]"]),  # a-] is a range: the set runs on to the next ]
        (b"[\\]]", [b"]"], [b"\\"]),
        (b"a\\", [b"a\\"], [b"a"]),  # a trailing backslash is literal
        (b"[\x7f-\xff]", [b"\x80", b"\xff"], [b"a"]),  # unsigned bytes
        (b"*a*b*", [b"ab", b"xaxbx"], [b"ba"]),
    ],
)
def test_glob_semantics(pattern, yes, no):
    g = Glob(pattern)
    assert [g.match(k) for k in yes] == [True] * len(yes)
    assert [g.match(k) for k in no] == [False] * len(no)


@pytest.fixture(scope="module")
def long_key_db(tmp_path_factory) -> Path:
    b = Builder()
    b.string(b"A" * 100_000, b"v")
    b.string(b"AB", b"v")
    return b.db.write(tmp_path_factory.mktemp("longkey") / "db")


@pytest.mark.parametrize(
    ("glob", "live"), [("*A*A*A*A*B", 0), ("*A*A*A*A*A", 1), ("*A*?*[A]A*A*[^A]*A", 0), ("*A*A*A*A*A*", 1), ("*A*B", 1)]
)
def test_match_on_a_100kb_key_is_bounded(long_key_db, glob, live):
    """A backtracking regex took exponential time here (``*A*A*B`` on 100 kB never finished)."""
    start = time.monotonic()
    proc = run_bytes("stats", long_key_db, "--match", glob, "--format", "json", "--top", "0", timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"]["keys"] == live
    assert elapsed < 5, f"kvfix stats --match {glob} took {elapsed:.1f} s"


# --- 2. bad \x escapes in KEY, --namespace, --match: usage errors ---------------------------


@pytest.mark.parametrize(
    ("args", "command", "needles"),
    [
        (["inspect", "{db}", "a\\xZZ"], "inspect", ["'KEY'", "bad escape \\xZZ at position 1", "--key-hex"]),
        (["inspect", "{db}", "plain\\x4"], "inspect", ["'KEY'", "\\x4 at position 5"]),
        (["inspect", "{db}", "plain", "--namespace", "\\x4"], "inspect", ["'--namespace'", "\\x4 at position 0"]),
        (["inspect", "{db}", "plain", "--namespace", "ns\\x-1"], "inspect", ["'--namespace'", "\\x-1"]),
        (["stats", "{db}", "--namespace", "\\x4"], "stats", ["'--namespace'", "bad escape \\x4"]),
        (["stats", "{db}", "--match", "a*\\x"], "stats", ["'--match'", "bad escape \\x at position 2"]),
        (["stats", "{db}", "--match", "\\x+f"], "stats", ["'--match'", "\\x+f"]),  # int() would take +f
        (["stats", "{db}", "--match", "\\x f"], "stats", ["'--match'", "\\x f"]),  # and " f"
    ],
)
def test_bad_escape_is_a_usage_error(hostile_db, args, command, needles):
    argv = [hostile_db if a == "{db}" else a for a in args]
    proc = run_kvfix(*argv)
    line = assert_usage_line(proc.returncode, proc.stdout, proc.stderr, f"kvfix {command}", *needles)
    assert "use \\xNN with two hex digits" in line
    res = run_cli(*argv)  # in-process: the same one line
    assert (res.exit_code, res.stderr) == (2, proc.stderr)


def test_good_escapes_and_raw_argv_bytes_still_name_keys(hostile_db):
    assert run_cli("inspect", hostile_db, "\\xffraw\\xfe", "--format", "json").exit_code == 0
    assert run_cli("inspect", hostile_db, "\\x1b[31mred", "--format", "json").exit_code == 0
    # A non-UTF-8 argument from the shell (surrogateescape in argv) is those bytes, not an error.
    proc = run_bytes("inspect", hostile_db, b"\xffraw\xfe", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert bytes.fromhex(json.loads(proc.stdout)["key_hex"]) == b"\xffraw\xfe"
    proc = run_bytes("stats", hostile_db, "--namespace", b"n|s\x1b]0;title\x07", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"]["keys"] == 1


# --- 3. every usage error: one line, exit 2 -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command", "needles"),
    [
        (["scan", "{db}", "--bogus"], "kvfix scan", ["no such option", "--bogus"]),
        (["stats"], "kvfix stats", ["missing argument", "PATH"]),
        (["stats", "{db}", "--format", "nope"], "kvfix stats", ["'--format'", "'nope'"]),
        (["stats", "{db}", "--top", "-1"], "kvfix stats", ["'--top'", "-1"]),
        (["scan", "{db}", "--format"], "kvfix scan", ["'--format' requires an argument"]),
        (["scan", "{db}", "extra"], "kvfix scan", ["unexpected extra argument"]),
        (["check", "{db}", "--yes"], "kvfix check", ["--repair"]),
        (["inspect", "{db}", "plain", "--key-hex", "00"], "kvfix inspect", ["KEY", "--key-hex"]),
        (["inspect", "{db}", "--key-hex", "zz"], "kvfix inspect", ["--key-hex", "not hex digits"]),
        (["migrate", "{db}", "--bogus"], "kvfix migrate", ["no such option"]),
        (["nosuch"], "kvfix", ["no such command", "nosuch"]),
        (["--bogus"], "kvfix", ["no such option"]),
    ],
)
def test_usage_errors_are_one_line(hostile_db, args, command, needles):
    argv = [hostile_db if a == "{db}" else a for a in args]
    proc = run_kvfix(*argv)
    assert_usage_line(proc.returncode, proc.stdout, proc.stderr, command, *needles)
    assert "Usage:" not in proc.stderr and "Try '" not in proc.stderr
    res = run_cli(*argv)
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", proc.stderr)


def test_usage_error_escapes_what_the_user_typed(hostile_db):
    proc = run_bytes("scan", hostile_db, b"--\x1b[31m\xff")
    assert proc.returncode == 2
    text = assert_safe_bytes(proc.stderr)
    line = assert_usage_line(proc.returncode, proc.stdout.decode(), text, "kvfix scan", "no such option", "\\x1b[31m")
    assert "\\xff" in line or "\\udcff" in line, line  # click quotes the name with repr() itself


def test_help_and_version_still_exit_0():
    for args in (["--help"], ["scan", "--help"], ["-h"], ["--version"]):
        res = run_cli(*args)
        assert res.exit_code == 0 and res.stdout and res.stderr == "", (args, res.output)


# --- 4. table formats escape their cell separators ------------------------------------------


def _pipe_tables(text: str) -> list[list[str]]:
    """Runs of consecutive lines starting with ``|`` (Markdown tables)."""
    tables: list[list[str]] = []
    previous = False
    for line in text.splitlines():
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    return tables


@pytest.mark.parametrize("fmt", ["github", "pipe", "markdown"])
@pytest.mark.parametrize("command", ["stats", "inspect"])
def test_markdown_tables_keep_their_columns(hostile_db, fmt, command):
    args = ["stats", hostile_db, "--top", "20"] if command == "stats" else ["inspect", hostile_db, "pipe|KEY"]
    res = run_cli(*args, "--format", fmt)
    assert res.exit_code == 0, res.output
    tables = _pipe_tables(res.stdout)
    assert tables and "pipe\\|KEY" in res.stdout  # the row with the name is there, escaped
    for table in tables:
        header = len(UNESCAPED_PIPE.findall(table[0]))
        assert [len(UNESCAPED_PIPE.findall(row)) for row in table] == [header] * len(table), table


@pytest.mark.parametrize(
    "fmt", ["orgtbl", "jira", "asciidoc", "textile", "mediawiki", "moinmoin", "youtrack", "rst", "psql", "html"]
)
def test_no_format_writes_a_raw_pipe_from_the_data(hostile_db, fmt):
    res = run_cli("inspect", hostile_db, "pipe|KEY", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert "KEY" in res.stdout
    if fmt not in ("psql", "html"):  # aligned text and HTML need no escape for |
        assert "pipe|KEY" not in res.stdout


def test_html_escapes_cells_and_the_lines_around_them(hostile_db):
    res = run_cli("inspect", hostile_db, "<script>x</script>", "--format", "html")
    assert res.exit_code == 0, res.output
    assert "<script>" not in res.stdout
    title = res.stdout.splitlines()[0]
    assert title == "kvfix inspect __namespace/&lt;script&gt;x&lt;/script&gt;", title


@pytest.mark.parametrize("fmt", ["latex", "latex_booktabs", "latex_longtable"])
def test_latex_rows_keep_their_columns(hostile_db, fmt):
    res = run_cli("inspect", hostile_db, "a&b_c{d}%", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert "a\\&b" in res.stdout
    separator = re.compile(r"(?<!\\)&")
    for block in res.stdout.split("\\begin{")[1:]:  # one tabular each; their widths differ
        rows = [line for line in block.splitlines() if line.endswith("\\\\")]
        assert len({len(separator.findall(row)) for row in rows}) == 1, rows
    for line in res.stdout.splitlines():  # titles and lines around the tables are escaped too
        assert line.endswith("\\\\") or not re.search(r"(?<!\\)[&%]", line), line


def test_unsafe_formats_are_never_rendered_raw(hostile_db):
    for fmt in UNSAFE_FORMATS:
        res = run_cli("inspect", hostile_db, "a&b_c{d}%", "--format", fmt)
        if res.exit_code == 2:  # refused as a usage error: fine
            assert "--format" in res.stderr
            continue
        assert res.exit_code == 0, res.output
        assert "a&b" not in res.stdout and "a\\&b" in res.stdout


def test_offered_formats_leave_out_the_unsafe_ones():
    offered = offered_formats()
    assert offered[:4] == ["rich", "plain", "markdown", "json"]
    assert not set(UNSAFE_FORMATS) & set(offered)
    assert {"latex_raw", "unsafehtml"} <= set(UNSAFE_FORMATS)
    assert {"github", "pipe", "html", "latex", "tsv"} <= set(offered)
    assert len(offered) == len(set(offered))


def test_latex_raw_is_not_a_format(hostile_db):
    res = run_cli("inspect", hostile_db, "plain", "--format", "latex_raw")
    assert res.exit_code == 2 and "latex_raw" in res.stderr


# --- 5. names and paths never reach the output raw ------------------------------------------


SHOWN = {  # how each name must appear: kvfix's escapes, and Markdown's on top for markdown
    "plain": {"markup": "[bold red]x[/]", "esc": "\\x1b[31mred", "nonutf8": "\\xffraw\\xfe"},
    "markdown": {"markup": "\\[bold red\\]x\\[/\\]", "esc": "\\\\x1b\\[31mred", "nonutf8": "\\\\xffraw\\\\xfe"},
}
SHOWN["rich"] = SHOWN["plain"]


@pytest.mark.parametrize("fmt", ["rich", "plain", "markdown"])
@pytest.mark.parametrize("name", ["markup", "esc", "nonutf8"])
def test_hostile_names_are_escaped_in_text_output(hostile_db, fmt, name):
    for args in (["stats", hostile_db, "--top", "20"], ["inspect", hostile_db, HOSTILE_NAMES[name]]):
        proc = run_bytes(*args, "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        text = assert_safe_bytes(proc.stdout)
        assert SHOWN[fmt][name] in text, (args, text)


HOSTILE_DIR = b"bad\xff\x1b[31m[bold]dir"


@pytest.fixture(scope="module")
def hostile_path(tmp_path_factory) -> bytes:
    """legacy-basic unpacked under a directory whose name holds ESC, markup and a non-UTF-8 byte."""
    base = os.fsencode(tmp_path_factory.mktemp("paths")) + b"/" + HOSTILE_DIR
    os.mkdir(base)
    unpack("legacy-basic", Path(os.fsdecode(base)))
    return base + b"/legacy-basic"


COMMANDS = {
    "scan": ["scan", "{path}"],
    "check": ["check", "{path}"],
    "stats": ["stats", "{path}"],
    "inspect": ["inspect", "{path}", "greeting"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_json_stays_utf8_under_a_hostile_path(hostile_path, command):
    args = [hostile_path if a == "{path}" else a for a in COMMANDS[command]]
    proc = run_bytes(*args, "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8
    assert_safe_bytes(proc.stdout)
    shown = doc["db"]["path"]
    assert unshow(shown).startswith(hostile_path), shown  # lossless: the shown path maps back


@pytest.mark.parametrize("fmt", ["rich", "plain", "markdown", "github", "html"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_text_reports_escape_a_hostile_path(hostile_path, command, fmt):
    args = [hostile_path if a == "{path}" else a for a in COMMANDS[command]]
    proc = run_bytes(*args, "--format", fmt)
    assert proc.returncode in (0, 1), proc.stderr
    text = assert_safe_bytes(proc.stdout)
    if command != "inspect":  # inspect's title names the key, not the path
        assert "\\xff" in text.splitlines()[0].replace("\\\\", "\\"), text.splitlines()[0]


def test_errors_escape_a_hostile_path(hostile_path):
    missing = hostile_path + b"/nope\x1b[2J"
    proc = run_bytes("scan", missing)
    assert proc.returncode == 2
    line = assert_safe_bytes(proc.stderr)
    assert line.count("\n") == 1 and "\\xff" in line and "\\x1b[2J" in line, line
