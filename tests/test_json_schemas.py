"""Every JSON document kvfix writes validates against its schema in schemas/ (Draft 2020-12).

Each command runs as the user runs it (``kvfix ... --format json``, in-process through
click, like the rest of the suite) on every real fixture, and on the synthetic databases
of the stats/inspect and repair tests for what the fixtures do not hold (every key type,
a repair).  The schemas are strict (closed objects, enums, ``required``), so a changed
shape fails here; the negative tests show they can fail at all.  The jq-style tests parse
the output with doubles for integers, as jq and JavaScript do, and check that key versions
(about 2^61) survive because they are strings.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FIXTURE_NAMES, manifest, run_cli, unpack
from stats_inspect_data import rich_database
from test_check_synth import xclaim_trace
from test_newer_types_data import newer_database

from kvfix.analysis.inspect import inspect_key
from kvfix.store.opening import open_read_only

ROOT = Path(__file__).parent.parent
SCHEMAS = ROOT / "schemas"
SCHEMA_NAMES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
ID_BASE = "https://kvfix.invalid/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_SAFE = 2**53 - 1
#: Fixtures that hold prefixed group records: where ``--to legacy`` has something to plan.
PREFIXED_FIXTURES = {"prefixed-basic", "upgraded-mixed"}

_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {}


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def validator(name: str) -> jsonschema.Draft202012Validator:
    if name not in _VALIDATORS:
        s = schema(name)
        jsonschema.Draft202012Validator.check_schema(s)
        _VALIDATORS[name] = jsonschema.Draft202012Validator(s, format_checker=None)
    return _VALIDATORS[name]


def validate(name: str, doc: Any) -> Any:
    """Validate doc against schemas/<name>.schema.json; fail with every error, not only the first."""
    errors = sorted(validator(name).iter_errors(doc), key=lambda e: list(e.absolute_path))
    details = "\n".join(f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors)
    assert not errors, f"{len(errors)} errors against {name}.schema.json:\n{details}"
    return doc


# --- running kvfix, each command once per module -----------------------------------------------


class Runs:
    """Fixtures unpacked once per module and every read-only command run once (cached by its arguments)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs = {name: unpack(name, root / "fixtures") for name in FIXTURE_NAMES}
        self._out: dict[tuple[str, ...], tuple[int, str]] = {}

    def json_text(self, command: str, name: str, *args: str, codes: tuple[int, ...] = (0, 1)) -> str:
        """stdout of ``kvfix COMMAND <fixture> ARGS --format json``."""
        key = (command, name, *args)
        if key not in self._out:
            res = run_cli(command, self.dirs[name], *args, "--format", "json")
            self._out[key] = (res.exit_code, res.stdout)
            assert res.exit_code in codes, f"exit {res.exit_code}: {res.stderr}"
        code, text = self._out[key]
        assert code in codes
        return text

    def doc(self, command: str, name: str, *args: str, codes: tuple[int, ...] = (0, 1)) -> Any:
        return json.loads(self.json_text(command, name, *args, codes=codes))

    def plan(self, name: str, *args: str) -> tuple[Any, Path]:
        """``migrate --dry-run --records --save-plan FILE ARGS``: (its JSON, the plan file); run once."""
        path = self.root / "plans" / f"{'_'.join((name, *args))}.jsonl"
        path.parent.mkdir(exist_ok=True)
        doc = self.doc("migrate", name, "--dry-run", "--records", "--save-plan", str(path), *args, codes=(0,))
        return doc, path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("json-schemas"))


def migrate_variants(name: str) -> list[tuple[str, ...]]:
    """Both directions on every fixture (--to legacy plans writes where prefixed records are); each conflict choice."""
    out: list[tuple[str, ...]] = [(), ("--to", "legacy")]
    if name == "upgraded-mixed":
        out += [("--on-conflict", "keep-prefixed"), ("--on-conflict", "keep-legacy")]
    return out


def stream_keys(name: str) -> list[tuple[str, str]]:
    """(namespace, key) of every stream in the fixture's manifest."""
    space = manifest(name)["keyspace"]
    return [(ns, key) for ns, keys in sorted(space.items()) for key, v in sorted(keys.items()) if v["type"] == "stream"]


def other_keys(name: str) -> list[tuple[str, str]]:
    """One key of each non-stream type in the manifest."""
    seen: dict[str, tuple[str, str]] = {}
    for ns, keys in sorted(manifest(name)["keyspace"].items()):
        for key, v in sorted(keys.items()):
            if v["type"] != "stream":
                seen.setdefault(v["type"], (ns, key))
    return list(seen.values())


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the schemas themselves --------------------------------------------------------------------


def test_every_command_has_its_schema():
    assert set(SCHEMA_NAMES) == {"scan", "check", "migrate", "stats", "inspect", "backups", "plan-line"}
    assert (SCHEMAS / "README.md").is_file()


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_a_valid_draft_2020_12_schema(name):
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    assert jsonschema.validators.validator_for(s) is jsonschema.Draft202012Validator
    assert s["$schema"] == DRAFT
    assert s["$id"] == f"{ID_BASE}{name}.schema.json"
    assert s["title"].strip() and len(s["description"]) > 40
    assert "kvfix" in s["description"]
    readme = (SCHEMAS / "README.md").read_text()
    assert f"{name}.schema.json" in readme


def test_every_schema_file_is_used_by_a_test():
    """No orphan schema: every file is named by a validate("...") call inside a test of this module."""
    tree = ast.parse(Path(__file__).read_text())
    used: dict[str, set[str]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_"):
            for call in ast.walk(fn):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "validate"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    used.setdefault(call.args[0].value, set()).add(fn.name)
    assert set(SCHEMA_NAMES) <= set(used), f"schemas no test validates: {sorted(set(SCHEMA_NAMES) - set(used))}"
    assert set(used) <= set(SCHEMA_NAMES), f"tests name missing schemas: {sorted(set(used) - set(SCHEMA_NAMES))}"


# --- every command on every fixture ------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_scan_json(runs, name):
    plain = validate("scan", runs.doc("scan", name))
    assert plain["mode"] == "fast" and plain["records"] is False
    assert all("pel" not in g for s in plain["streams"] for g in s["groups"])
    pel = validate("scan", runs.doc("scan", name, "--pel"))
    assert all("pel" in g for s in pel["streams"] for g in s["groups"])
    records = validate("scan", runs.doc("scan", name, "--records"))
    assert records["records"] is True and all("collision_records" in s for s in records["streams"])
    deep = validate("scan", runs.doc("scan", name, "--deep"))
    assert deep["mode"] == "deep"
    deep_records = validate("scan", runs.doc("scan", name, "--deep", "--records"))
    assert deep_records["mode"] == "deep" and deep_records["records"] is True
    assert plain["summary"]["streams"] == len(stream_keys(name))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_check_json(runs, name):
    plain = validate("check", runs.doc("check", name))
    assert plain["records"] is False and "verified_records" not in plain and "repair" not in plain
    records = validate("check", runs.doc("check", name, "--records"))
    assert records["records"] is True
    verified = validate("check", runs.doc("check", name, "--verify-checksums"))
    assert set(verified["verified_records"]) == set(verified["db"]["column_families"])
    repair = validate("check", runs.doc("check", name, "--repair", "--dry-run"))
    assert repair["repair"]["dry_run"] is True


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_migrate_dry_run_json_and_plan_file_lines(runs, name):
    for args in migrate_variants(name):
        summary = validate("migrate", runs.doc("migrate", name, "--dry-run", *args, codes=(0,)))
        assert summary["dry_run"] is True and summary["records"] is False and summary["result"] is None
        full, plan_file = runs.plan(name, *args)
        validate("migrate", full)
        assert full["records"] is True
        target = "legacy" if args[:2] == ("--to", "legacy") else "prefixed"
        assert full["migration"]["target"] == target
        plan = lines(plan_file)
        for line in plan:
            validate("plan-line", line)
        header, writes = plan[0], plan[1:]
        assert header["command"] == "migrate" and header["lines"] == len(writes)
        assert sum(w["op"] == "rewrite" for w in writes) == full["summary"]["rewrites"]
        assert sum(w["op"] == "drop" for w in writes) == full["summary"]["drops"]
        if target == "legacy" and name in PREFIXED_FIXTURES:
            assert full["summary"]["rewrites"] > 0


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_migrate_list_json(runs, name):
    doc = validate("migrate", runs.doc("migrate", name, "--list", codes=(0,)))
    assert doc["migrations"] and "dry_run" not in doc


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_migrate_json_and_backups_json(tmp_path, name):
    """A real run on a fresh copy: the result document, then the backups it left, then a run with nothing left."""
    d = unpack(name, tmp_path)
    before = validate("backups", json.loads(run_cli("backups", d, "--format", "json").stdout))
    assert before["backups"] == []
    to = ("--to", "legacy") if name == "prefixed-basic" else ()
    if name == "upgraded-mixed":  # refused first: a group in both layouts, exit 2, the plan still on stdout
        res = run_cli("migrate", d, "--yes", "--format", "json")
        assert res.exit_code == 2, res.stderr
        refused = validate("migrate", json.loads(res.stdout))
        assert refused["blocked"] is True and refused["dry_run"] is False and refused["result"] is None
        to = ("--on-conflict", "keep-prefixed")
    res = run_cli("migrate", d, "--yes", "--records", *to, "--format", "json")
    assert res.exit_code == 0, res.stderr
    done = validate("migrate", json.loads(res.stdout))
    assert done["dry_run"] is False and done["result"]["verified"] is True and done["backup"]
    after = validate("backups", json.loads(run_cli("backups", d, "--format", "json").stdout))
    assert [b["path"] for b in after["backups"]] == [done["backup"]] and after["backups"][0]["complete"]
    res = run_cli("migrate", d, "--yes", "--no-backup", *to, "--format", "json")
    assert res.exit_code == 0, res.stderr
    again = validate("migrate", json.loads(res.stdout))
    assert again["streams"] == [] and again["summary"]["rewrites"] == 0


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_stats_json(runs, name):
    doc = validate("stats", runs.doc("stats", name, codes=(0,)))
    keys = sum(len(v) for v in manifest(name)["keyspace"].values())
    assert doc["total"]["keys"] == keys


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_inspect_json(runs, name):
    streams = stream_keys(name)
    assert streams
    for ns, key in streams:
        doc = validate("inspect", runs.doc("inspect", name, key, "--namespace", ns, codes=(0,)))
        assert doc["metadata"]["type"] == "stream" and doc["key"] == key
    ns, key = streams[0]
    raw = validate("inspect", runs.doc("inspect", name, key, "--namespace", ns, "--raw", codes=(0,)))
    assert "raw_metadata_hex" in raw and all("raw_key_hex" in r for r in raw["records"])
    for ns, key in other_keys(name):
        validate("inspect", runs.doc("inspect", name, key, "--namespace", ns, codes=(0,)))


# --- what the fixtures do not hold: every key type, a repair ---------------------------------


@pytest.mark.parametrize(("build", "types_at_least"), [(rich_database, 12), (newer_database, 4)], ids=["rich", "newer"])
def test_stats_and_inspect_json_of_every_key_type(tmp_path, build, types_at_least):
    path = build(tmp_path / "db")
    res = run_cli("stats", path, "--top", "1000", "--format", "json")
    assert res.exit_code == 0, res.stderr
    stats = validate("stats", json.loads(res.stdout))
    assert len(stats["top"]) >= 10
    types = set()
    for top in stats["top"]:  # namespace and key as the output shows them: \xNN escapes for other bytes
        res = run_cli("inspect", path, top["key"], "--namespace", top["namespace"], "--raw", "--format", "json")
        assert res.exit_code == 0, res.stderr
        doc = validate("inspect", json.loads(res.stdout))
        assert doc["key_hex"] == top["key_hex"] and doc["namespace_hex"] == top["namespace_hex"]
        types.add(doc["metadata"]["type"])
    assert len(types) >= types_at_least, types


def test_check_repair_json_and_repair_plan_lines(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    plan = tmp_path / "repair.jsonl"
    res = run_cli("check", path, "--repair", "--dry-run", "--records", "--save-plan", plan, "--format", "json")
    assert res.exit_code == 1, res.stderr
    dry = validate("check", json.loads(res.stdout))
    assert dry["repair"]["dry_run"] is True and dry["repair"]["planned"]
    saved = lines(plan)
    for line in saved:
        validate("plan-line", line)
    assert saved[0]["command"] == "check --repair" and all(x["op"] == "put" for x in saved[1:])
    res = run_cli("check", path, "--repair", "--plan", plan, "--yes", "--format", "json")
    assert res.exit_code == 0, res.stderr
    done = validate("check", json.loads(res.stdout))
    assert done["repair"]["verified"] is True and done["repair"]["written_streams"] == 1
    backups = validate("backups", json.loads(run_cli("backups", path, "--format", "json").stdout))
    assert [b["path"] for b in backups["backups"]] == [done["repair"]["backup"]]


# --- jq-style readers: integers as doubles -----------------------------------------------------


def _versions(doc: dict) -> dict[tuple[str, str], Any]:
    return {(s["namespace_hex"], s["key_hex"]): s["version"] for s in doc["streams"]}


def _integers(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _integers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _integers(v)]
    return []


def _as_jq(text: str) -> Any:
    """What jq (or JavaScript) reads: every JSON integer a double."""
    return json.loads(text, parse_int=float)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_versions_survive_a_reader_that_uses_doubles(runs, name):
    texts = {
        "scan": runs.json_text("scan", name),
        "scan --records": runs.json_text("scan", name, "--records"),
        "check": runs.json_text("check", name),
        **{
            f"migrate --dry-run {' '.join(args)}": runs.json_text("migrate", name, "--dry-run", *args, codes=(0,))
            for args in migrate_variants(name)
        },
    }
    # The exact versions, from an exact parse of inspect (Python ints are exact), for every stream of the manifest.
    exact: dict[tuple[str, str], int] = {}
    for ns, key in stream_keys(name):
        doc = json.loads(runs.json_text("inspect", name, key, "--namespace", ns, codes=(0,)))
        exact[(doc["namespace_hex"], doc["key_hex"])] = int(doc["metadata"]["version"])
    assert all(v > MAX_SAFE for v in exact.values())  # a double could not hold them
    for what, text in texts.items():
        as_jq, precise = _as_jq(text), json.loads(text)
        seen = _versions(as_jq)
        assert seen == _versions(precise), what
        assert all(isinstance(v, str) for v in seen.values()), what
        for k, v in seen.items():
            assert int(v) == exact[k], (what, k)
        if what in ("scan", "check"):
            assert set(seen) == set(exact), what  # every stream is there
        # Every other integer a double keeps exactly: nothing beyond 2^53-1 is a JSON number.
        assert all(abs(n) <= MAX_SAFE for n in _integers(precise)), what
    header = json.loads(runs.plan(name)[1].read_text().splitlines()[0], parse_int=float)
    assert isinstance(header["planned_at_sequence"], str)
    for command in ("stats", "backups"):
        assert all(abs(n) <= MAX_SAFE for n in _integers(runs.doc(command, name, codes=(0,)))), command


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_inspect_version_survives_a_reader_that_uses_doubles(runs, name):
    """inspect (schema 2): the version a decimal string, and no other integer beyond 2^53-1 a JSON number."""
    keys = stream_keys(name) + other_keys(name)
    with open_read_only(runs.dirs[name]) as db:
        exact = {(ns, key): inspect_key(db, key.encode(), namespace=ns.encode()) for ns, key in keys}
    for (ns, key), rep in exact.items():
        assert rep is not None and rep.metadata is not None
        version = rep.metadata.version  # None for a string key: its metadata has no version
        text = runs.json_text("inspect", name, key, "--namespace", ns, codes=(0,))
        as_jq, precise = _as_jq(text), json.loads(text)
        assert as_jq == precise, key
        assert as_jq["metadata"]["version"] == (None if version is None else str(version)), key
        assert all(abs(n) <= MAX_SAFE for n in _integers(precise)), key
    ns, key = stream_keys(name)[0]
    assert (exact[(ns, key)].metadata.version or 0) > MAX_SAFE  # a double could not hold it
    doc = runs.doc("inspect", name, key, "--namespace", ns, codes=(0,))
    broken = copy.deepcopy(doc)
    broken["metadata"]["version"] = int(broken["metadata"]["version"])
    assert not validator("inspect").is_valid(broken)


def test_inspect_list_head_tail_and_indexes_survive_a_reader_that_uses_doubles(runs):
    """A list's head, tail and item indexes sit around 2^63: strings, exact through a double-based parse."""
    with open_read_only(runs.dirs["legacy-basic"]) as db:
        rep = inspect_key(db, b"queue")
    assert rep is not None and rep.metadata is not None and rep.metadata.list is not None
    head, tail = rep.metadata.list.head, rep.metadata.list.tail
    assert head > MAX_SAFE and tail > head
    text = runs.json_text("inspect", "legacy-basic", "queue", codes=(0,))
    doc = validate("inspect", _as_jq(text))
    assert doc["metadata"]["list"] == {"head": str(head), "tail": str(tail)}
    assert [r["index"] for r in doc["records"]] == [str(i) for i in range(head, tail)]
    assert [int(r["index"]) for r in doc["records"]] == [r.data["index"] for r in rep.records]


# --- the schemas can fail ------------------------------------------------------------------------


def test_a_bare_integer_version_fails_validation(runs):
    name = "legacy-basic"
    docs = {
        "scan": runs.doc("scan", name, "--records"),
        "check": runs.doc("check", name),
        "migrate": runs.plan(name)[0],
    }
    for kind, doc in docs.items():
        validate(kind, doc)  # as written: valid
        assert doc["streams"], kind
        broken = copy.deepcopy(doc)
        broken["streams"][0]["version"] = int(broken["streams"][0]["version"])
        with pytest.raises(jsonschema.ValidationError):
            validator(kind).validate(broken)
        errors = [e for top in validator(kind).iter_errors(broken) for e in (top, *top.context)]
        assert any(list(e.absolute_path)[-3:] == ["streams", 0, "version"] for e in errors), kind
        # What jq would make of it: a double, which the schema refuses as well.
        rounded = copy.deepcopy(doc)
        rounded["streams"][0]["version"] = float(rounded["streams"][0]["version"])
        assert not validator(kind).is_valid(rounded), kind
    header = lines(runs.plan(name)[1])[0]
    validate("plan-line", header)
    header["planned_at_sequence"] = int(header["planned_at_sequence"])
    assert not validator("plan-line").is_valid(header)


def test_other_regressions_fail_validation(runs):
    """A few shape changes the schemas are there to catch."""
    scan = runs.doc("scan", "upgraded-mixed", "--records")

    def fails(kind: str, change) -> None:
        doc = copy.deepcopy(scan if kind == "scan" else runs.doc(kind, "upgraded-mixed", codes=(0, 1)))
        change(doc)
        assert not validator(kind).is_valid(doc)

    fails("scan", lambda d: d["streams"][0].update(surprise=1))  # a new key in a closed object
    fails("scan", lambda d: d["summary"].pop("read_errors"))  # a key gone
    fails("scan", lambda d: d.update(records=False))  # collision_records without --records
    fails("scan", lambda d: d["findings"][0].update(code="NOT_A_CODE"))
    collision = next(f for f in scan["findings"] if f["code"] == "SCAN_COLLISION")
    i = scan["findings"].index(collision)
    fails("scan", lambda d: d["findings"][i].update(severity="warning"))  # a code's severity changed
    fails("scan", lambda d: d["streams"][-1]["groups"][0].update(pending=2**60))  # a counter a double rounds
    fails("scan", lambda d: d["streams"][0].update(layout="sideways"))
    fails("stats", lambda d: d["total"].update(keys="8"))
    fails("stats", lambda d: d.update(schema=2))
