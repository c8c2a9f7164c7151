"""--target: findings for the release the operator will start."""

from __future__ import annotations

import json

from conftest import run_cli, unpack

from kvfix.codec.metadata import StreamId
from kvfix.synth import SynthDB, SynthStream, group_value


def codes(*args) -> tuple[int, dict[str, str]]:
    res = run_cli("scan", *map(str, args), "--format", "json")
    assert res.exit_code in (0, 1), res.output
    return res.exit_code, {f["code"]: f["severity"] for f in json.loads(res.stdout)["findings"]}


def test_legacy_data_is_right_for_2_9_and_wrong_for_2_10(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    code, found = codes(d)
    assert code == 1 and found["LEGACY_LAYOUT"] == "warning" and found["SCAN_COLLISION"] == "error"
    code, found = codes(d, "--target", "2.9")
    assert code == 0 and "LEGACY_LAYOUT" not in found and "SCAN_COLLISION" not in found


def test_prefixed_data_aborts_a_2_9_server(tmp_path):
    d = unpack("prefixed-basic", tmp_path)
    code, found = codes(d)
    assert code == 0 and found["ROLLBACK_HAZARD"] == "info"
    code, found = codes(d, "--target", "2.9")
    assert code == 1 and found["ROLLBACK_HAZARD"] == "error"
    res = run_cli("check", d, "--target", "2.9", "--format", "json")
    assert res.exit_code == 1 and "ROLLBACK_HAZARD" in res.stdout


def test_an_empty_group_name_collides_on_2_9_too(tmp_path):
    s = SynthStream(b"s", entries=[(StreamId(10, 0), (b"f", b"v"))])
    s.groups.append(("legacy", b"", group_value(StreamId(10, 0))))
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    code, found = codes(path, "--target", "2.9")
    assert code == 1 and found["SCAN_COLLISION"] == "error"


def test_rollback_then_target_2_9_is_clean_and_migrate_says_which_target(tmp_path):
    d = unpack("legacy-namespaces", tmp_path)
    assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    res = run_cli("migrate", d, "--to", "legacy", "--yes", "--no-backup")
    assert res.exit_code == 0 and "--target 2.9" in res.stderr
    assert codes(d, "--target", "2.9")[0] == 0
    assert codes(d)[0] == 1  # and still wrong for 2.10
