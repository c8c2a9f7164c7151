"""scan against the real Kvrocks fixtures: the manifests' ``records`` are the ground truth."""

from __future__ import annotations

import pytest
from conftest import FIXTURE_NAMES, manifest, run_cli, scan_json_cli, scan_lib, unpack

from kvfix.textsafe import show


def _json_records(doc: dict) -> dict:
    """The manifest's records shape, from scan's JSON: ns -> stream -> "layout:group" -> ..."""
    out: dict = {}
    for s in doc["streams"]:
        for g in s["groups"]:
            rec = {
                "consumers": len(g["consumers"]),
                "consumer_pending": {c["name"]: c["pending"] for c in g["consumers"]},
                "last-delivered-id": g["last_delivered_id"],
                "pending": g["pending"],
                "pel": sorted([p["id"], p["consumer"], p["delivery_count"]] for p in g["pel"]),
            }
            assert g["pel_records"] == len(g["pel"])
            out.setdefault(s["namespace"], {}).setdefault(s["key"], {})[f"{g['layout']}:{g['name']}"] = rec
    return out


def _lib_records(report) -> dict:
    out: dict = {}
    for s in report.streams:
        for (layout, name), g in s.groups.items():
            rec = {
                "consumers": len(g.consumers),
                "consumer_pending": {show(c.name): c.pending for c in g.consumers.values()},
                "last-delivered-id": None if g.value is None else str(g.value.last_delivered_id),
                "pending": g.pending,
                "pel": sorted([str(p.entry_id), show(p.value.consumer), p.value.delivery_count] for p in g.pel),
            }
            out.setdefault(show(s.namespace), {}).setdefault(show(s.key), {})[f"{layout}:{show(name)}"] = rec
    return out


def _manifest_records(m: dict) -> dict:
    out: dict = {}
    for ns, streams in m["records"].items():
        for stream, groups in streams.items():
            for label, rec in groups.items():
                out.setdefault(ns, {}).setdefault(stream, {})[label] = {
                    "consumers": rec["consumers"],
                    "consumer_pending": rec["consumer_pending"],
                    "last-delivered-id": rec["last-delivered-id"],
                    "pending": rec["pending"],
                    "pel": sorted(rec["pel"]),
                }
    return out


def _manifest_streams(m: dict) -> set[tuple[str, str]]:
    return {(ns, k) for ns, keys in m["keyspace"].items() for k, v in keys.items() if v["type"] == "stream"}


@pytest.mark.parametrize("sub", ["", "db"], ids=["dir", "dir/db"])
def test_cli_json_matches_manifest(fixture_name, fixture_dir, sub):
    m = manifest(fixture_name)
    code, doc = scan_json_cli(fixture_dir / sub if sub else fixture_dir)
    assert doc["schema"] == 2
    assert doc["mode"] == "fast"
    assert doc["db"]["path"] == str((fixture_dir / "db").absolute())
    assert doc["db"]["cluster_slots"] is m["cluster"]
    assert doc["db"]["namespaces"] == sorted(m["namespaces"])
    assert "metadata" in doc["db"]["column_families"] and "stream" in doc["db"]["column_families"]
    assert _json_records(doc) == _manifest_records(m)
    # Every stream of the keyspace appears, exactly once; those without groups have layout none.
    seen = [(s["namespace"], s["key"]) for s in doc["streams"]]
    assert sorted(seen) == sorted(_manifest_streams(m))
    with_groups = {(ns, k) for ns, streams in m["records"].items() for k in streams}
    for s in doc["streams"]:
        ident = (s["namespace"], s["key"])
        if ident not in with_groups:
            assert s["layout"] == "none" and s["groups"] == [] and s["collision_records"] == []
        else:
            layouts = {label.split(":")[0] for label in m["records"][s["namespace"]][s["key"]]}
            assert s["layout"] == (layouts.pop() if len(layouts) == 1 else "mixed")
        assert s["size"] == m["keyspace"][s["namespace"]][s["key"]]["value"]["xlen"]
        if m["cluster"]:
            assert isinstance(s["slot"], int)
        else:
            assert s["slot"] is None
    assert doc["summary"]["streams"] == len(seen)
    assert code == (0 if fixture_name == "prefixed-basic" else 1)


def test_library_matches_manifest(fixture_name, fixture_dir):
    m = manifest(fixture_name)
    for path in (fixture_dir, fixture_dir / "db"):
        report = scan_lib(path)
        assert report.cluster_slots is m["cluster"]
        assert _lib_records(report) == _manifest_records(m)
        assert {(show(s.namespace), show(s.key)) for s in report.streams} == _manifest_streams(m)
        assert len(report.streams) == len(_manifest_streams(m))
        deep = scan_lib(path, deep=True)
        assert _lib_records(deep) == _manifest_records(m)


def test_expected_pending_matches(fixture_name, fixture_dir):
    """expected_pending (what the commands left pending) equals the PEL scan reports."""
    m = manifest(fixture_name)
    _, doc = scan_json_cli(fixture_dir)
    got: dict = {}
    for s in doc["streams"]:
        for g in s["groups"]:
            for p in g["pel"]:
                got.setdefault(s["namespace"], {}).setdefault(s["key"], {}).setdefault(g["name"], []).append(
                    [p["id"], p["consumer"], p["delivery_count"]]
                )
    want = {
        ns: {k: {g: sorted(v) for g, v in groups.items() if v} for k, groups in streams.items()}
        for ns, streams in m.get("expected_pending", {}).items()
    }
    want = {ns: {k: gs for k, gs in streams.items() if gs} for ns, streams in want.items()}
    want = {ns: streams for ns, streams in want.items() if streams}
    got = {ns: {k: {g: sorted(v) for g, v in gs.items()} for k, gs in streams.items()} for ns, streams in got.items()}
    assert got == want


def test_legacy_collisions_on_fixtures(fixture_name, fixture_dir):
    """Every legacy record is a collision at alias id len(group)-<next 8 bytes>; prefixed ones never."""
    _, doc = scan_json_cli(fixture_dir)
    for s in doc["streams"]:
        legacy = sum(s["records"][k] for k in ("legacy_group", "legacy_consumer", "legacy_pel"))
        assert len(s["collision_records"]) == legacy
        for c in s["collision_records"]:
            sub = bytes.fromhex(c["subkey_hex"])
            group = bytes.fromhex(c["group_hex"])
            assert int.from_bytes(sub[:8], "big") == len(group)
            ms, seq = c["alias_id"].split("-")
            assert int(ms) == len(group)
            assert int(seq) == int.from_bytes(sub[8:16].ljust(8, b"\0"), "big")
            assert c["kind"].startswith("legacy_")
            assert c["releases"] == ["2.6-2.7", "2.10+"]  # no empty group names in real fixtures
            assert "XRANGE - +" in c["scans"]
        codes = {f["code"] for f in doc["findings"] if f["key"] == s["key"] and f["namespace"] == s["namespace"]}
        assert ("SCAN_COLLISION" in codes) == bool(legacy)
        assert ("LEGACY_LAYOUT" in codes) == bool(legacy)
        prefixed = sum(s["records"][k] for k in ("prefixed_group", "prefixed_consumer", "prefixed_pel"))
        assert ("ROLLBACK_HAZARD" in codes) == bool(prefixed)
        assert ("MIXED_LAYOUT" in codes) == (s["layout"] == "mixed")
        assert s["records"]["unknown"] == 0


def test_upgraded_mixed_conflict(tmp_path):
    _, doc = scan_json_cli(unpack("upgraded-mixed", tmp_path))
    codes = [(f["code"], f["key"]) for f in doc["findings"]]
    assert ("LAYOUT_CONFLICT", "orders") in codes
    assert ("MIXED_LAYOUT", "orders") in codes
    conflict = next(f for f in doc["findings"] if f["code"] == "LAYOUT_CONFLICT")
    assert conflict["details"] == {"group": "billing"}
    assert conflict["severity"] == "error"


@pytest.mark.parametrize(
    ("name", "fail_on", "code"),
    [
        ("prefixed-basic", None, 0),
        ("prefixed-basic", "warning", 0),
        ("prefixed-basic", "error", 0),
        ("prefixed-basic", "info", 1),
        ("legacy-basic", None, 1),
        ("legacy-basic", "error", 1),
        ("legacy-basic", "info", 1),
        ("legacy-cluster", None, 1),
        ("legacy-namespaces", None, 1),
        ("upgraded-mixed", "error", 1),
    ],
)
def test_fail_on_exit_codes(tmp_path, name, fail_on, code):
    path = unpack(name, tmp_path)
    args = ["scan", str(path), "--format", "json"]
    if fail_on:
        args += ["--fail-on", fail_on]
    result = run_cli(*args)
    assert result.exit_code == code, result.output


def test_prefixed_basic_has_only_info_findings(tmp_path):
    _, doc = scan_json_cli(unpack("prefixed-basic", tmp_path))
    assert doc["findings"]
    assert {f["severity"] for f in doc["findings"]} == {"info"}
    assert {f["code"] for f in doc["findings"]} == {"ROLLBACK_HAZARD"}
    assert doc["summary"]["errors"] == doc["summary"]["warnings"] == 0


def test_cluster_override_mismatch(tmp_path):
    cluster = unpack("legacy-cluster", tmp_path / "c")
    code, doc = scan_json_cli(cluster, "--no-cluster")
    assert code == 1
    assert doc["db"]["cluster_slots"] is False
    assert "CLUSTER_MODE_MISMATCH" in {f["code"] for f in doc["findings"]}
    code, doc = scan_json_cli(cluster, "--cluster")
    assert "CLUSTER_MODE_MISMATCH" not in {f["code"] for f in doc["findings"]}
    plain = unpack("prefixed-basic", tmp_path / "p")
    code, doc = scan_json_cli(plain, "--cluster")
    assert code == 1
    assert "CLUSTER_MODE_MISMATCH" in {f["code"] for f in doc["findings"]}
    code, doc = scan_json_cli(plain, "--no-cluster")
    assert code == 0


@pytest.mark.parametrize("fmt", ["plain", "markdown", "rich"])
def test_human_formats_on_fixtures(tmp_path, fmt):
    path = unpack("upgraded-mixed", tmp_path)
    result = run_cli("scan", str(path), "--format", fmt, "--pel")
    assert result.exit_code == 1
    out = result.stdout
    assert "\x1b" not in out
    if fmt == "markdown":
        out = out.replace("\\", "")  # Markdown escapes _ in codes
    for word in ("orders", "billing", "late", "LAYOUT_CONFLICT", "SCAN_COLLISION", "1795775565426-1"):
        assert word in out


def test_fixture_list_is_complete():
    assert set(FIXTURE_NAMES) == {
        "legacy-basic",
        "prefixed-basic",
        "upgraded-mixed",
        "legacy-cluster",
        "legacy-namespaces",
    }


def test_fast_equals_deep_on_fixtures(fixture_dir):
    from kvfix.render.scan_report import scan_json

    docs = []
    for deep in (False, True):
        doc = scan_json(scan_lib(fixture_dir, deep=deep), True, records=True)
        doc.pop("mode")
        doc["summary"].pop("records_entry")
        for s in doc["streams"]:
            s["records"].pop("entry")
        docs.append(doc)
    assert docs[0] == docs[1]


def test_upgraded_mixed_late_group_reads_into_legacy_records(tmp_path):
    """2.10.1 answered 'failed to decode stream entry value' to XREADGROUP of the new group
    `late` (manifest commands_on_2.10.1): its cursor 0-0 lies below every legacy alias id."""
    assert "error" in manifest("upgraded-mixed")["commands_on_2.10.1"]["xreadgroup late"]
    _, report = scan_json_cli(unpack("upgraded-mixed", tmp_path))
    orders = next(s for s in report["streams"] if s["key"] == "orders")
    assert orders["collision_records"]
    for collision in orders["collision_records"]:
        assert "XREADGROUP late >" in collision["scans"]
        # billing exists in both layouts: each copy is named with its layout
        assert not any(s == "XREADGROUP billing >" for s in collision["scans"])
