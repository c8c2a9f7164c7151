"""Reports end with the command to run next (and say nothing when there is nothing to do)."""

from __future__ import annotations

from conftest import run_cli, unpack
from test_check_synth import xclaim_trace


def lines(*args) -> list[str]:
    res = run_cli(*map(str, args), "--format", "plain")
    assert res.exit_code in (0, 1), res.output
    return [line for line in res.stdout.splitlines() if line.startswith(("next:", "repairable:"))]


def test_legacy_data_says_migrate(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    assert [x for x in lines("scan", d) if "kvfix migrate" in x and "--dry-run" in x]
    assert [x for x in lines("check", d) if "kvfix migrate" in x]


def test_a_conflict_names_the_choice(tmp_path):
    d = unpack("upgraded-mixed", tmp_path)
    assert [x for x in lines("scan", d) if "--on-conflict" in x]


def test_repairable_findings_say_repair(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    assert [x for x in lines("check", path) if x.startswith("repairable: kvfix check") and "--repair" in x]


def test_prefixed_data_for_2_9_says_roll_back_and_for_2_10_nothing(tmp_path):
    d = unpack("prefixed-basic", tmp_path)
    assert [x for x in lines("scan", d, "--target", "2.9") if "--to legacy" in x]
    assert lines("scan", d) == []
