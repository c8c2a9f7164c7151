"""kvfix migrate on the real Kvrocks fixtures: the manifests' ``records`` are the ground truth."""

from __future__ import annotations

import json

import pytest
from conftest import dump_all, manifest, records_view, run_cli, run_kvfix, tree_digest, unpack

LEGACY_ONLY = ["legacy-basic", "legacy-cluster", "legacy-namespaces"]


def scan_doc(path) -> dict:
    result = run_cli("scan", path, "--format", "json", "--pel")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def migrate_json(*args) -> tuple[int, dict | None, str]:
    result = run_cli("migrate", *args, "--format", "json", "--records")
    doc = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, doc, result.stderr


def relabel(records: dict, layout: str) -> dict:
    """Manifest records with every group's layout label replaced."""
    return {
        ns: {k: {f"{layout}:{name.split(':', 1)[1]}": v for name, v in groups.items()} for k, groups in streams.items()}
        for ns, streams in records.items()
    }


@pytest.mark.parametrize("name", LEGACY_ONLY)
def test_legacy_fixture_becomes_prefixed_with_the_same_groups(tmp_path, name):
    d = unpack(name, tmp_path)
    code, doc, err = migrate_json(d, "--yes")
    assert code == 0, err
    assert doc["result"]["verified"] and not doc["result"]["interrupted"]
    assert doc["backup"] and (tmp_path / doc["backup"].rsplit("/", 1)[1]).is_dir()
    after = scan_doc(d)
    assert {s["layout"] for s in after["streams"]} <= {"prefixed", "none"}
    assert after["summary"]["collisions"] == 0
    assert records_view(after) == relabel(manifest(name)["records"], "prefixed")
    # group_number equals the number of groups in every stream
    for s in after["streams"]:
        assert s["group_number"] == len(s["groups"]), s["key"]


def test_prefixed_fixture_rolls_back_to_legacy(tmp_path):
    d = unpack("prefixed-basic", tmp_path)
    code, doc, err = migrate_json(d, "--yes", "--to", "legacy")
    assert code == 0, err
    assert doc["migration"]["target"] == "legacy"
    after = scan_doc(d)
    assert {s["layout"] for s in after["streams"]} <= {"legacy", "none"}
    assert records_view(after) == relabel(manifest("prefixed-basic")["records"], "legacy")


def test_mixed_conflict_is_refused_and_nothing_written(tmp_path):
    d = unpack("upgraded-mixed", tmp_path)
    before = tree_digest(tmp_path)
    code, doc, err = migrate_json(d, "--yes")
    assert code == 2
    assert "billing" in err and "--on-conflict" in err and err.count("\n") == 1
    conflict = [c for s in doc["streams"] for c in s["conflicts"]]
    assert [(c["group"], c["resolution"]) for c in conflict] == [("billing", None)]
    assert any("pending_number: legacy=3 prefixed=0" in x for x in conflict[0]["differences"])
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("keep", ["keep-prefixed", "keep-legacy"])
def test_mixed_conflict_resolved(tmp_path, keep):
    d = unpack("upgraded-mixed", tmp_path)
    records = manifest("upgraded-mixed")["records"]["__namespace"]
    code, doc, err = migrate_json(d, "--yes", "--on-conflict", keep)
    assert code == 0, err
    orders = next(s for s in doc["streams"] if s["key"] == "orders")
    loser = "legacy" if keep == "keep-prefixed" else "prefixed"
    assert orders["drops"] and {x["kind"].split("_")[0] for x in orders["drops"]} == {loser}
    assert all(x["group"] == "billing" and keep in x["reason"] for x in orders["drops"])
    assert orders["metadata"]["group_number_old"] == 4 and orders["metadata"]["group_number_new"] == 3
    after = records_view(scan_doc(d))["__namespace"]
    winner = "prefixed:billing" if keep == "keep-prefixed" else "legacy:billing"
    expected_orders = {
        "prefixed:audit": records["orders"]["legacy:audit"],
        "prefixed:billing": records["orders"][winner],
        "prefixed:late": records["orders"]["prefixed:late"],
    }
    assert after["orders"] == expected_orders
    assert after["jobs"] == {"prefixed:workers": records["jobs"]["legacy:workers"]}
    stream = next(s for s in scan_doc(d)["streams"] if s["key"] == "orders")
    assert stream["group_number"] == 3 and stream["layout"] == "prefixed"


@pytest.mark.parametrize("name", [*LEGACY_ONLY, "upgraded-mixed"])
def test_round_trip_is_byte_identical(tmp_path, name):
    d = unpack(name, tmp_path)
    original = dump_all(d)
    extra = ["--on-conflict", "keep-legacy"] if name == "upgraded-mixed" else []
    assert run_cli("migrate", d, "--yes", "--no-backup", *extra).exit_code == 0
    middle = dump_all(d)
    assert middle["stream"] != original["stream"]
    assert run_cli("migrate", d, "--yes", "--no-backup", "--to", "legacy").exit_code == 0
    back = dump_all(d)
    if name == "upgraded-mixed":
        # Every legacy record is back as it was; `late` (2.10.1's) is legacy now; the prefixed
        # billing records that lost the conflict are gone; group_number says 3 instead of 4.
        legacy = {k: v for k, v in original["stream"].items() if b"\xff" * 8 not in k}
        assert {k: back["stream"][k] for k in legacy} == legacy
        assert {k for k in back["stream"] if k not in legacy} == {
            k.replace(b"\xff" * 8 + b"\x01\0\0\0\0\0\0\0\x04late", b"\0\0\0\0\0\0\0\x04lateMETADATA")
            for k in original["stream"]
            if k.endswith(b"\xff" * 8 + b"\x01\0\0\0\0\0\0\0\x04late")
        } | {k for k in back["stream"] if b"late\0\0\0\0\0\0\0\x02w9METADATA" in k}
        assert all(back[cf] == original[cf] for cf in original if cf not in ("stream", "metadata"))
        return
    assert back == original


@pytest.mark.parametrize("name", ["legacy-basic", "legacy-cluster", "upgraded-mixed"])
def test_dry_run_changes_nothing_and_equals_the_real_run(tmp_path, name):
    d = unpack(name, tmp_path / "a")
    extra = ["--on-conflict", "keep-prefixed"] if name == "upgraded-mixed" else []
    before = tree_digest(tmp_path)
    for fmt in ("json", "plain", "markdown", "rich", "grid"):
        result = run_cli("migrate", d, "--dry-run", "--format", fmt, *extra)
        assert result.exit_code == 0, result.output
        assert result.stdout
    assert tree_digest(tmp_path) == before
    code, planned, _ = migrate_json(d, "--dry-run", *extra)
    assert planned["dry_run"] and planned["result"] is None and planned["backup"] is None
    assert all(r["old_key_hex"] and r["new_key_hex"] for s in planned["streams"] for r in s["rewrites"])
    code, done, err = migrate_json(d, "--yes", "--no-backup", *extra)
    assert code == 0, err
    assert done["streams"] == planned["streams"] and done["summary"] == planned["summary"]
    # What the plan says is what the database now holds: every new key, no old key.
    dump = dump_all(d)["stream"]
    for s in planned["streams"]:
        for r in s["rewrites"]:
            assert bytes.fromhex(r["new_key_hex"]) in dump and bytes.fromhex(r["old_key_hex"]) not in dump
        for x in s["drops"]:
            assert bytes.fromhex(x["key_hex"]) not in dump


def test_second_run_plans_nothing_and_touches_nothing(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    before = tree_digest(tmp_path)
    code, doc, _ = migrate_json(d, "--yes")
    assert code == 0
    assert doc["streams"] == [] and doc["summary"]["rewrites"] == 0 and doc["backup"] is None
    assert tree_digest(tmp_path) == before


def test_refuses_without_terminal_or_yes(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    before = tree_digest(tmp_path)
    proc = run_kvfix("migrate", d, stdin=__import__("subprocess").DEVNULL)
    assert proc.returncode == 2
    assert "--yes" in proc.stderr
    assert tree_digest(tmp_path) == before


def test_backup_is_a_readable_copy_of_the_original(tmp_path):
    d = unpack("legacy-namespaces", tmp_path / "data")
    original = dump_all(d)
    code, doc, err = migrate_json(d, "--yes", "--backup-dir", tmp_path / "bk")
    assert code == 0, err
    # --backup-dir is the directory the backup goes in (created when missing)
    [first] = (tmp_path / "bk").iterdir()
    assert first.name.startswith("legacy-namespaces.kvfix-backup-") and doc["backup"] == str(first)
    assert dump_all(first) == original
    assert not (first / "rocksdict-config.json").exists()
    assert run_cli("migrate", d, "--yes", "--to", "legacy", "--backup-dir", tmp_path / "bk").exit_code == 0
    inside = sorted(p for p in (tmp_path / "bk").iterdir() if p != first)
    assert len(inside) == 1 and dump_all(inside[0]) != original


def test_list_shows_what_applies(tmp_path):
    legacy = unpack("legacy-basic", tmp_path)
    result = run_cli("migrate", "--list", legacy, "--format", "json")
    assert result.exit_code == 0, result.output
    [m] = json.loads(result.stdout)["migrations"]
    assert m["id"] == "001_stream_groups_prefixed" and m["applies"] and m["streams"] == 2
    assert not m["revert"]["applies"]
    prefixed = unpack("prefixed-basic", tmp_path)
    [m] = json.loads(run_cli("migrate", "--list", prefixed, "--format", "json").stdout)["migrations"]
    assert not m["applies"] and m["revert"]["applies"] and m["revert"]["streams"] == 2
