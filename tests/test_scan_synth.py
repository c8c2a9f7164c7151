"""scan on synthetic databases built with the codec's encoders: what real fixtures lack."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from conftest import run_cli, scan_json_cli, scan_lib

from kvfix.analysis.findings import SCAN_CODES
from kvfix.codec import InternalKey, KeyType, Metadata, MetadataKey, StreamId, StreamTail, slot_of
from kvfix.codec.ints import U64_MAX, u64
from kvfix.codec.stream import ConsumerValue, PelValue
from kvfix.render import render
from kvfix.render.scan_report import scan_document, scan_json
from kvfix.synth import BASE_VERSION, DEFAULT_NS, SynthDB, SynthStream, group_value
from kvfix.textsafe import unshow

HOSTILE = [b"", b"a\x00b", b"\xff\xfe\xff", b"\x1b[31mred\x1b[0m\x1b]8;;http://x\x07", b"[red]x[/red]", b"n" * 2000]
NOW_ID = 1795775557168


def _entries(*ids: tuple[int, int]) -> list[tuple[StreamId, tuple[bytes, ...]]]:
    return [(StreamId(ms, seq), (b"f", b"%d" % ms)) for ms, seq in ids]


def _codes(findings: list[dict], key: str | None = None) -> list[str]:
    return sorted(f["code"] for f in findings if key is None or f["key"] == key)


def _groups(doc: dict) -> dict:
    return {(s["namespace_hex"], s["key_hex"]): s["groups"] for s in doc["streams"]}


# --- hostile names ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory):
    legacy = SynthStream(b"legacy:\x1b[2J", entries=_entries((1, 0), (5, 2), (NOW_ID, 0)))
    prefixed = SynthStream(b"[bold]prefixed[/bold]", entries=_entries((NOW_ID, 0)))
    for i, name in enumerate(HOSTILE):
        legacy.groups.append(("legacy", name, group_value(StreamId(5, 2), 1, 1)))
        legacy.consumers.append(("legacy", name, name, ConsumerValue(1, 10 + i, 10 + i)))
        legacy.pel.append(("legacy", name, StreamId(5, 2), PelValue(10, 1, name)))
        prefixed.groups.append(("prefixed", name, group_value(StreamId(NOW_ID, 0), 1, 1)))
        prefixed.consumers.append(("prefixed", name, name, ConsumerValue(1, 10 + i, 10 + i)))
        prefixed.pel.append(("prefixed", name, StreamId(NOW_ID, 0), PelValue(10, 2, name)))
    path = tmp_path_factory.mktemp("hostile") / "db"
    return SynthDB(streams=[legacy, prefixed]).write(path)


def test_hostile_names_decode_exactly(hostile_db):
    code, doc = scan_json_cli(hostile_db)
    assert code == 1
    by_key = {bytes.fromhex(s["key_hex"]): s for s in doc["streams"]}
    assert set(by_key) == {b"legacy:\x1b[2J", b"[bold]prefixed[/bold]"}
    for key, layout in ((b"legacy:\x1b[2J", "legacy"), (b"[bold]prefixed[/bold]", "prefixed")):
        s = by_key[key]
        assert unshow(s["key"]) == key
        assert s["layout"] == layout
        assert (
            s["records"][f"{layout}_group"] == s["records"][f"{layout}_consumer"] == s["records"][f"{layout}_pel"] == 6
        )
        assert s["records"]["unknown"] == 0
        assert sorted(bytes.fromhex(g["name_hex"]) for g in s["groups"]) == sorted(HOSTILE)
        for g in s["groups"]:
            name = bytes.fromhex(g["name_hex"])
            assert unshow(g["name"]) == name
            assert g["layout"] == layout and g["has_group_record"] and g["pending"] == 1
            [c] = g["consumers"]
            assert bytes.fromhex(c["name_hex"]) == name and unshow(c["name"]) == name and c["pending"] == 1
            [p] = g["pel"]
            assert bytes.fromhex(p["consumer_hex"]) == name and unshow(p["consumer"]) == name
            assert p["delivery_count"] == (1 if layout == "legacy" else 2)
    for f in doc["findings"]:
        if f["key"] is not None:
            assert bytes.fromhex(f["key_hex"]) == unshow(f["key"])
        assert "\x1b" not in f["message"] and "\x00" not in f["message"]


def test_hostile_names_collisions(hostile_db):
    _, doc = scan_json_cli(hostile_db)
    s = next(s for s in doc["streams"] if s["layout"] == "legacy")
    assert len(s["collision_records"]) == 18
    by_kind_group = {(c["kind"], bytes.fromhex(c["group_hex"])): c for c in s["collision_records"]}
    assert len(by_kind_group) == 18
    for (kind, group), c in by_kind_group.items():
        sub = bytes.fromhex(c["subkey_hex"])
        assert unshow(c["group"]) == group
        ms, seq = map(int, c["alias_id"].split("-"))
        assert (ms, seq) == (len(group), int.from_bytes(sub[8:16].ljust(8, b"\0"), "big"))
        empty_group = kind == "legacy_group" and group == b""
        assert len(sub) == 16 if empty_group else len(sub) > 16
        # Only the 16-byte empty-group record is also misread by the 2.8-2.9 length heuristic.
        assert c["releases"] == (["2.6-2.7", "2.8-2.9", "2.10+"] if empty_group else ["2.6-2.7", "2.10+"])
        assert "XRANGE - +" in c["scans"]
        assert ("XREAD 0" in c["scans"]) == ((ms, seq) > (0, 0))
    # The empty-named consumer of the empty-named group sits at alias 0-0, below XREAD 0's range.
    assert by_kind_group[("legacy_consumer", b"")]["alias_id"] == "0-0"
    assert by_kind_group[("legacy_group", b"")]["alias_id"] == f"0-{int.from_bytes(b'METADATA', 'big')}"
    collision = next(f for f in doc["findings"] if f["code"] == "SCAN_COLLISION")
    assert collision["details"]["records"] == 18
    assert "1 of them (16-byte subkeys, empty group names) are misread by 2.8-2.9 too" in collision["message"]
    assert collision["details"]["first_alias"] == "0-0"
    assert collision["details"]["last_alias"] == by_kind_group[("legacy_group", b"n" * 2000)]["alias_id"]


def test_hostile_names_findings(hostile_db):
    _, doc = scan_json_cli(hostile_db)
    legacy_key = "legacy:\\x1b[2J"
    assert _codes(doc["findings"], legacy_key) == ["LEGACY_LAYOUT", "SCAN_COLLISION"]
    assert _codes(doc["findings"], "[bold]prefixed[/bold]") == ["ROLLBACK_HAZARD"]
    assert all(f["code"] in SCAN_CODES and f["severity"] == SCAN_CODES[f["code"]][0] for f in doc["findings"])


@pytest.mark.parametrize("fmt", ["plain", "markdown", "rich", "grid"])
def test_hostile_names_never_reach_the_terminal(hostile_db, fmt):
    result = run_cli("scan", str(hostile_db), "--format", fmt, "--pel")
    assert result.exit_code == 1
    out = result.stdout
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
    if fmt == "markdown":
        assert "\\\\x1b\\[31mred" in out  # shown escaped (and Markdown-escaped), still there
        assert "[red]" not in out and "\\[red\\]" in out
        assert "[bold]" not in out
    else:
        assert "\\x1b[31mred" in out  # shown escaped, still there


def test_rich_renderer_keeps_markup_literal(hostile_db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "5000")  # wide console: no wrapping inside names
    report = scan_lib(hostile_db)
    buf = StringIO()
    render(scan_document(report, with_pel=True), "rich", buf)
    out = buf.getvalue()
    assert "\x1b" not in out and "\x00" not in out
    assert "[red]x[/red]" in out  # literal text, not a style that swallowed it
    assert "[bold]prefixed[/bold]" in out
    assert "\\x1b[31mred" in out


# --- adversarial database: classification details and fast == deep ---------------------------


def _adversarial(cluster: bool) -> SynthDB:
    db = SynthDB(cluster=cluster)
    for ns in (DEFAULT_NS, b"t1", b"t\xff2", b"", b"x" * 200):
        # explicit small ids interleaved with the alias ids of legacy records of group "g" (7-0x67...)
        s = SynthStream(
            b"{tag}mix",
            namespace=ns,
            entries=_entries(
                (0, 1),
                (1, 0),
                (1, U64_MAX),
                (7, 0),
                (7, int.from_bytes(b"gMETADAT", "big")),
                (NOW_ID, 0),
                (U64_MAX, 0),
                (U64_MAX, U64_MAX),
            ),
        )
        s.groups += [("legacy", b"g", group_value(StreamId(7, 0), 1, 1)), ("prefixed", b"g", group_value())]
        s.groups += [("legacy", b"", group_value()), ("prefixed", b"", group_value())]
        s.consumers += [
            ("legacy", b"g", b"c", ConsumerValue(1, 5, 5)),
            ("prefixed", b"g", b"c", ConsumerValue(0, 5, 5)),
        ]
        s.pel += [("legacy", b"g", StreamId(7, 0), PelValue(5, 1, b"c"))]
        db.streams.append(s)
        other = SynthStream(b"plain%d" % len(ns), namespace=ns, entries=_entries((NOW_ID, 0), (NOW_ID + 1, 0)))
        other.groups.append(("prefixed", b"p", group_value(StreamId(NOW_ID, 0))))
        db.streams.append(other)
    # stale version of the same key, then the live one (the metadata written last wins)
    db.streams.append(
        SynthStream(
            b"re", version=BASE_VERSION - 99, entries=_entries((NOW_ID, 0)), groups=[("legacy", b"old", group_value())]
        )
    )
    db.streams.append(SynthStream(b"re", version=BASE_VERSION + 1, entries=_entries((NOW_ID, 5))))
    db.streams.append(SynthStream(b"expired", expire_ms=1_000, entries=_entries((NOW_ID, 0))))
    old32 = SynthStream(b"old32", is_64bit=False, entries=_entries((3, 0), (NOW_ID, 0)))
    db.streams.append(old32)
    # a 32-bit stream record from before consumer groups: no group_number at all
    pre_groups = Metadata(
        KeyType.STREAM, False, 0, old32.version, 2, stream=StreamTail(entries_added=2, group_number=None)
    )
    db.raw.append(("metadata", MetadataKey(DEFAULT_NS, b"old32", db.slot(b"old32")).encode(), pre_groups.encode()))
    db.keys.append((DEFAULT_NS, b"unknown", Metadata(14, True, 0, None, None, tail=b"?")))
    db.keys.append((DEFAULT_NS, b"h", Metadata(KeyType.HASH, True, 0, 5, 1)))
    slot = db.slot(b"ghost")
    db.raw.append(("stream", InternalKey(DEFAULT_NS, b"ghost", 1, u64(NOW_ID) + u64(0), slot).encode(), b"\x01a\x01b"))
    # stale stream records of a key that is now a hash
    db.raw.append(
        ("stream", InternalKey(DEFAULT_NS, b"h", 4, u64(NOW_ID) + u64(0), db.slot(b"h")).encode(), b"\x01a\x01b")
    )
    return db


@pytest.fixture(scope="module", params=[False, True], ids=["no-cluster", "cluster"])
def adversarial_db(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("adv") / "db"
    return request.param, _adversarial(request.param).write(path)


def _without_entry_counts(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc.pop("mode")
    doc["summary"].pop("records_entry")
    for s in doc["streams"]:
        s["records"].pop("entry")
    return doc


def test_fast_equals_deep(adversarial_db):
    cluster, path = adversarial_db
    fast, deep = scan_lib(path), scan_lib(path, deep=True)
    assert not fast.deep and deep.deep
    jf, jd = scan_json(fast, True, records=True), scan_json(deep, True, records=True)
    assert _without_entry_counts(jf) == _without_entry_counts(jd)
    assert jf["db"]["cluster_slots"] is cluster
    # deep reads every entry; fast skips the timestamp-sized ones but never the small or max-ms ids
    for sf, sd in zip(jf["streams"], jd["streams"], strict=True):
        assert sf["records"]["entry"] <= sd["records"]["entry"]
        if sf["key"] == "{tag}mix":
            assert sd["records"]["entry"] == 8
            assert sf["records"]["entry"] == 7
    code_f, cli_f = scan_json_cli(path)
    code_d, cli_d = scan_json_cli(path, "--deep")
    assert code_f == code_d == 1
    assert cli_d["mode"] == "deep"
    assert _without_entry_counts(cli_f) == _without_entry_counts(cli_d)


def test_adversarial_classification(adversarial_db):
    cluster, path = adversarial_db
    doc = scan_json(scan_lib(path, deep=True), True, records=True)
    namespaces = {bytes.fromhex(s["namespace_hex"]) for s in doc["streams"]}
    assert namespaces == {DEFAULT_NS, b"t1", b"t\xff2", b"", b"x" * 200}
    assert sorted(unshow(n) for n in doc["db"]["namespaces"]) == sorted(namespaces)
    mixes = [s for s in doc["streams"] if s["key"] == "{tag}mix"]
    assert len(mixes) == 5
    for s in mixes:
        assert s["layout"] == "mixed"
        assert s["slot"] == (slot_of(b"tag") if cluster else None)
        assert slot_of(b"tag") == slot_of(b"{tag}mix") != slot_of(b"{tag}mi".replace(b"{", b""))
        assert {k: v for k, v in s["records"].items()} == {
            "entry": 8,
            "legacy_group": 2,
            "legacy_consumer": 1,
            "legacy_pel": 1,
            "prefixed_group": 2,
            "prefixed_consumer": 1,
            "prefixed_pel": 0,
            "stale": 0,
            "unknown": 0,
        }
        groups = {(g["layout"], g["name"]): g for g in s["groups"]}
        assert set(groups) == {("legacy", "g"), ("prefixed", "g"), ("legacy", ""), ("prefixed", "")}
        assert groups[("legacy", "g")]["pel"] == [
            {"id": "7-0", "consumer": "c", "consumer_hex": "63", "delivery_count": 1, "last_delivery_ms": 5}
        ]
        assert groups[("legacy", "g")]["last_delivered_id"] == "7-0"
        kinds = sorted((c["kind"], c["group"]) for c in s["collision_records"])
        assert kinds == [("legacy_consumer", "g"), ("legacy_group", ""), ("legacy_group", "g"), ("legacy_pel", "g")]
        empty = next(c for c in s["collision_records"] if c["group"] == "")
        assert empty["releases"] == ["2.6-2.7", "2.8-2.9", "2.10+"]
        # the prefixed copy of g has its cursor below the legacy alias ids: its XREADGROUP > walks into them
        g_group = next(c for c in s["collision_records"] if c["kind"] == "legacy_group" and c["group"] == "g")
        assert "XREADGROUP g [prefixed] >" in g_group["scans"]  # g is in both layouts
        codes = _codes(
            [f for f in doc["findings"] if f["namespace_hex" if False else "namespace"] == s["namespace"]], "{tag}mix"
        )
        assert codes == [
            "LAYOUT_CONFLICT",
            "LAYOUT_CONFLICT",
            "LEGACY_LAYOUT",
            "MAX_MS_ENTRY",
            "MIXED_LAYOUT",
            "ROLLBACK_HAZARD",
            "SCAN_COLLISION",
        ]
    max_ms = [f for f in doc["findings"] if f["code"] == "MAX_MS_ENTRY"]
    assert len(max_ms) == 5 and all(f["details"] == {"entries": 2} for f in max_ms)
    by_key = {s["key"]: s for s in doc["streams"] if s["namespace"] == "__namespace"}
    # stale version: counted on the live stream, its old legacy group is not reported as a group
    assert by_key["re"]["records"]["stale"] == 2 and by_key["re"]["groups"] == [] and by_key["re"]["layout"] == "none"
    assert by_key["re"]["version"] == str(BASE_VERSION + 1)  # schema 2: versions exceed 2^53, given as text
    assert by_key["expired"]["expired"] is True
    assert by_key["old32"]["group_number"] is None and by_key["old32"]["size"] == 2
    assert "ghost" not in by_key and "h" not in by_key and "unknown" not in by_key
    top = {(f["code"], f["key"]) for f in doc["findings"]}
    assert ("STALE_RECORDS", "re") in top
    assert ("STALE_RECORDS", "h") in top  # records of a key that is now a hash
    assert ("EXPIRED_STREAM", "expired") in top
    assert ("ORPHAN_RECORD", "ghost") in top
    assert ("UNKNOWN_TYPE", None) in top
    assert doc["garbage"]["orphan"]["records"] == 1
    assert doc["garbage"]["stale"]["records"] == 3
    assert "CLUSTER_MODE_MISMATCH" not in {c for c, _ in top}
    assert "UNDECODABLE_RECORD" not in {c for c, _ in top}


def test_adversarial_severities_and_fail_on(adversarial_db):
    _, path = adversarial_db
    _, doc = scan_json_cli(path)
    for f in doc["findings"]:
        assert f["severity"] == SCAN_CODES[f["code"]][0]
    s = doc["summary"]
    assert s["errors"] == sum(f["severity"] == "error" for f in doc["findings"]) > 0
    assert s["warnings"] + s["errors"] + s["infos"] == len(doc["findings"])
    for fail_on in ("error", "warning", "info"):
        assert run_cli("scan", str(path), "--format", "json", "--fail-on", fail_on).exit_code == 1


def test_info_only_database_exit_codes(tmp_path):
    db = SynthDB(streams=[SynthStream(b"gone", expire_ms=1, entries=_entries((NOW_ID, 0)))])
    path = db.write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    assert _codes(doc["findings"]) == ["EXPIRED_STREAM"]
    assert code == 0
    assert run_cli("scan", str(path), "--fail-on", "info", "--format", "json").exit_code == 1
    assert run_cli("scan", str(path), "--fail-on", "error", "--format", "json").exit_code == 0


def test_clean_database_has_no_findings(tmp_path):
    path = SynthDB(streams=[SynthStream(b"s", entries=_entries((NOW_ID, 0)))]).write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    assert code == 0 and doc["findings"] == []
    assert doc["streams"][0]["layout"] == "none"
    for fail_on in ("error", "warning", "info"):
        assert run_cli("scan", str(path), "--fail-on", fail_on, "--format", "json").exit_code == 0


def test_empty_kvrocks_database(tmp_path):
    path = SynthDB().write(tmp_path / "db")
    code, doc = scan_json_cli(path)
    assert code == 0
    assert doc["streams"] == [] and doc["findings"] == [] and doc["db"]["cluster_slots"] is False


def test_ambiguous_record_finding(tmp_path):
    s = SynthStream(b"amb", entries=_entries((NOW_ID, 0)))
    # empty-named legacy group whose all-zero value also decodes as entry 0-"METADATA"
    s.groups.append(("legacy", b"", group_value(StreamId(0, 0), 0, 0, entries_read=0)))
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    _, doc = scan_json_cli(path)
    amb = [f for f in doc["findings"] if f["code"] == "AMBIGUOUS_RECORD"]
    assert len(amb) == 1
    assert amb[0]["details"]["readings"] == ["legacy_group", "entry"]
    assert amb[0]["details"]["subkey_hex"] == (u64(0) + b"METADATA").hex()
    assert doc["streams"][0]["records"]["legacy_group"] == 1


def _text_hex_pairs(obj, path="$"):
    """Every (text, hex) sibling pair in a JSON document: field X next to X_hex."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.endswith("_hex") and k[:-4] in obj and k != "subkey_hex":
                yield f"{path}.{k[:-4]}", obj[k[:-4]], v
            yield from _text_hex_pairs(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _text_hex_pairs(v, f"{path}[{i}]")


@pytest.mark.parametrize("which", ["hostile", "adversarial"])
def test_every_text_field_unshows_to_its_hex(which, hostile_db, adversarial_db):
    path = hostile_db if which == "hostile" else adversarial_db[1]
    _, doc = scan_json_cli(path)
    pairs = list(_text_hex_pairs(doc))
    assert len(pairs) > 20
    for where, text, hexed in pairs:
        if text is None:
            assert hexed is None, where
            continue
        assert unshow(text) == bytes.fromhex(hexed), where
        assert text.isprintable(), where
    for s in doc["streams"]:
        assert unshow(s["namespace"]) in {bytes.fromhex(s["namespace_hex"])}
    for ns in doc["db"]["namespaces"]:
        assert ns.isprintable()


def test_hostile_fast_equals_deep(hostile_db):
    jf = scan_json(scan_lib(hostile_db), True, records=True)
    jd = scan_json(scan_lib(hostile_db, deep=True), True, records=True)
    assert _without_entry_counts(jf) == _without_entry_counts(jd)


@pytest.mark.parametrize(
    "families",
    [("default", "metadata"), ("default", "metadata", "stream", "index", "future_cf")],
    ids=["no-stream-cf", "unknown-cfs"],
)
def test_column_family_sets(tmp_path, families):
    from kvfix.store.opening import create_database

    path = tmp_path / "db"
    meta = Metadata(KeyType.STREAM, True, 0, BASE_VERSION, 0, stream=StreamTail())
    with create_database(path, column_families=families) as db:
        db.write([("metadata", MetadataKey(DEFAULT_NS, b"s").encode(), meta.encode())])
    code, doc = scan_json_cli(path)
    assert code == 0
    assert sorted(doc["db"]["column_families"]) == sorted(families)
    assert [(s["key"], s["layout"], s["size"]) for s in doc["streams"]] == [("s", "none", 0)]
    assert doc["findings"] == []
