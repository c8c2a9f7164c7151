"""Plans as files: what --save-plan writes is exactly what --plan applies, or nothing is written."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import LEGACY_FIXTURES, dump_all, run_cli, tree_digest, unpack
from test_check_synth import xclaim_trace

from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import GroupKey, GroupValue, encode_subkey
from kvfix.store.opening import open_writable


def save(d, path, *extra):
    res = run_cli("migrate", d, "--dry-run", "--save-plan", path, *extra, "--format", "json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines[0], lines[1:]


def changes(before: dict, after: dict) -> tuple[dict, set]:
    """(puts: cf -> {key: value} new or changed, deletes: {(cf, key)})."""
    puts = {cf: {k: v for k, v in rows.items() if before.get(cf, {}).get(k) != v} for cf, rows in after.items()}
    deletes = {(cf, k) for cf, rows in before.items() for k in rows if k not in after.get(cf, {})}
    return {cf: rows for cf, rows in puts.items() if rows}, deletes


@pytest.mark.parametrize("name", LEGACY_FIXTURES)
def test_saved_plan_is_exactly_what_apply_writes(tmp_path, name):
    d = unpack(name, tmp_path)
    extra = ("--on-conflict", "keep-prefixed") if name == "upgraded-mixed" else ()
    header, lines = save(d, tmp_path / "plan.jsonl", *extra)
    assert header["format"] == "kvfix-plan/1" and header["lines"] == len(lines) and lines
    body = b"".join(
        json.dumps(x, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode() + b"\n" for x in lines
    )
    assert hashlib.sha256(body).hexdigest() == header["digest"]
    before = dump_all(d)
    res = run_cli("migrate", d, "--plan", tmp_path / "plan.jsonl", "--yes", "--no-backup")
    assert res.exit_code == 0, res.output
    puts, deletes = changes(before, dump_all(d))
    want_puts: dict[str, dict[bytes, str]] = {}
    want_deletes = set()
    for line in lines:
        if line["op"] == "rewrite":
            want_puts.setdefault("stream", {})[bytes.fromhex(line["new_key_hex"])] = line["value_sha256"]
            want_deletes.add(("stream", bytes.fromhex(line["old_key_hex"])))
        elif line["op"] == "drop":
            want_deletes.add(("stream", bytes.fromhex(line["key_hex"])))
        else:
            assert line["op"] == "metadata"
            want_puts.setdefault("metadata", {})[bytes.fromhex(line["key_hex"])] = hashlib.sha256(
                bytes.fromhex(line["new_hex"])
            ).hexdigest()
    got = {cf: {k: hashlib.sha256(v).hexdigest() for k, v in rows.items()} for cf, rows in puts.items()}
    assert got == want_puts
    assert deletes == want_deletes


def test_plan_is_refused_after_any_change_and_nothing_is_written(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    _, lines = save(d, tmp_path / "plan.jsonl")
    late = _prefix_of(lines[0]) + encode_subkey(GroupKey("legacy", b"created-later"))
    with open_writable(d) as db:  # a group created in a planned stream after the plan was saved
        db.write([("stream", late, GroupValue(0, 0, StreamId(0, 0), 0, 0).encode())])
    before = tree_digest(tmp_path)
    res = run_cli("migrate", d, "--plan", tmp_path / "plan.jsonl", "--yes", "--no-backup")
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "no longer gives this plan" in err[0] and "line " in err[0]
    assert tree_digest(tmp_path) == before


def _prefix_of(line: dict) -> bytes:
    """The stream incarnation's key prefix of a rewrite line (its new key minus the prefixed subkey)."""
    old, new = bytes.fromhex(line["old_key_hex"]), bytes.fromhex(line["new_key_hex"])
    n = 0
    while n < min(len(old), len(new)) and old[n] == new[n]:
        n += 1
    return new[:n]


def test_edited_plan_file_is_refused(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    path = tmp_path / "plan.jsonl"
    save(d, path)
    text = path.read_text().splitlines()
    doc = json.loads(text[1])
    doc["value_len"] += 1
    path.write_text("\n".join([text[0], json.dumps(doc), *text[2:]]) + "\n")
    before = tree_digest(tmp_path)
    res = run_cli("migrate", d, "--plan", path, "--yes", "--no-backup")
    assert res.exit_code == 2 and "line 2" in res.stderr
    assert tree_digest(tmp_path) == before


def test_plan_of_another_database_is_refused(tmp_path):
    a, b = unpack("legacy-basic", tmp_path / "a"), unpack("legacy-basic", tmp_path / "b")
    (b / "db" / "IDENTITY").write_text("another-database\n")
    save(a, tmp_path / "plan.jsonl")
    res = run_cli("migrate", b, "--plan", tmp_path / "plan.jsonl", "--yes", "--no-backup")
    assert res.exit_code == 2 and "db_identity" in res.stderr


def test_plan_options_come_from_the_file(tmp_path):
    d = unpack("prefixed-basic", tmp_path)
    header, lines = save(d, tmp_path / "plan.jsonl", "--to", "legacy")
    assert header["options"]["to"] == "legacy" and lines
    res = run_cli("migrate", d, "--plan", tmp_path / "plan.jsonl", "--yes", "--no-backup", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["migration"]["target"] == "legacy"


def test_save_plan_and_plan_usage(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", d, "--save-plan", tmp_path / "p", "--yes").exit_code == 2
    save(d, tmp_path / "p")
    assert run_cli("migrate", d, "--plan", tmp_path / "p", "--dry-run").exit_code == 2


def test_repair_plan_file_round_trip(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    plan = tmp_path / "repair.jsonl"
    res = run_cli("check", path, "--repair", "--dry-run", "--save-plan", plan, "--format", "json")
    assert res.exit_code == 1, res.output
    lines = [json.loads(x) for x in plan.read_text().splitlines()]
    assert lines[0]["command"] == "check --repair" and lines[1:] and all(x["op"] == "put" for x in lines[1:])
    before = dump_all(path)
    res = run_cli("check", path, "--repair", "--plan", plan, "--yes", "--no-backup", "--format", "json")
    assert res.exit_code == 0, res.output
    puts, deletes = changes(before, dump_all(path))
    assert not deletes
    assert {(cf, k, v) for cf, rows in puts.items() for k, v in rows.items()} == {
        (x["cf"], bytes.fromhex(x["key_hex"]), bytes.fromhex(x["value_hex"])) for x in lines[1:]
    }
    again = run_cli("check", path, "--repair", "--plan", plan, "--yes", "--no-backup")
    assert again.exit_code == 2 and "no longer gives this plan" in again.stderr
