"""kvfix check on every real fixture: what the real data's findings are, and why."""

from __future__ import annotations

import json

import pytest
from check_helpers import check_json, codes
from conftest import FIXTURE_NAMES, manifest, run_cli, tree_digest, unpack

from kvfix.analysis.invariants import CHECK_CODES

# Every finding check reports on the real fixtures, by stream, and the reason.
#
# None of them is an invariant finding: the servers that wrote these fixtures kept every
# counter right for the commands the fixtures ran (XGROUP CREATE, XREADGROUP, XACK; no
# XGROUP DESTROY, no XCLAIM - the two server bugs are reproduced in test_check_synth.py).
# What remains are scan's layout findings, all real Kvrocks inconsistencies:
# - LEGACY_LAYOUT (warning) + SCAN_COLLISION (error): the development build wrote groups
#   in the legacy layout; 2.10+ answers NOGROUP and XRANGE fails on them (the manifests'
#   2.10.1 views record exactly that for upgraded-mixed).
# - MIXED_LAYOUT + LAYOUT_CONFLICT (errors): 2.10.1 created `late` and `billing` again in
#   the prefixed layout next to the legacy ones (upgraded-mixed, orders).
# - ROLLBACK_HAZARD (info): prefixed group records that a 2.8/2.9 server aborts on.
LEGACY_PAIR = {"LEGACY_LAYOUT", "SCAN_COLLISION"}
EXPECTED: dict[str, dict[tuple[str, str], set[str]]] = {
    "legacy-basic": {("__namespace", "jobs"): LEGACY_PAIR, ("__namespace", "orders"): LEGACY_PAIR},
    "prefixed-basic": {("__namespace", "jobs"): {"ROLLBACK_HAZARD"}, ("__namespace", "orders"): {"ROLLBACK_HAZARD"}},
    "upgraded-mixed": {
        ("__namespace", "jobs"): LEGACY_PAIR,
        ("__namespace", "orders"): LEGACY_PAIR | {"MIXED_LAYOUT", "LAYOUT_CONFLICT", "ROLLBACK_HAZARD"},
    },
    "legacy-cluster": {("__namespace", f"{{u{i}}}:events"): LEGACY_PAIR for i in (1, 2, 3)},
    "legacy-namespaces": {("tenant_a", "orders"): LEGACY_PAIR, ("tenant_b", "orders"): LEGACY_PAIR},
}


def test_every_fixture_is_listed():
    assert sorted(EXPECTED) == FIXTURE_NAMES


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_fixture_findings(tmp_path, name):
    path = unpack(name, tmp_path)
    before = tree_digest(path)
    code, report = check_json(path)
    found: dict[tuple[str, str], set[str]] = {}
    for f in report["findings"]:
        found.setdefault((f["namespace"], f["key"]), set()).add(f["code"])
    assert found == EXPECTED[name]
    assert not codes(report) & set(CHECK_CODES), "no invariant finding on data real servers wrote"
    assert code == (0 if name == "prefixed-basic" else 1)  # prefixed-basic: only ROLLBACK_HAZARD (info)
    assert tree_digest(path) == before, "check without --repair changes nothing"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_counts_agree_with_the_servers(tmp_path, name):
    """Entries counted by the deep walk equal XLEN the server answered; every stream is checked."""
    path = unpack(name, tmp_path)
    _, report = check_json(path)
    m = manifest(name)
    lens = {
        (ns, key): v["value"]["xlen"]
        for ns, keys in m["keyspace"].items()
        for key, v in keys.items()
        if v["type"] == "stream"
    }
    got = {(s["namespace"], s["key"]): s["entries"] for s in report["streams"]}
    assert got == lens
    assert all(s["entries"] == s["size"] for s in report["streams"])
    assert report["summary"]["entries"] == sum(lens.values())


def test_exit_codes_follow_fail_on(tmp_path):
    path = unpack("prefixed-basic", tmp_path)
    assert run_cli("check", path, "--format", "json").exit_code == 0  # only ROLLBACK_HAZARD (info)
    assert run_cli("check", path, "--format", "json", "--fail-on", "info").exit_code == 1
    assert run_cli("check", tmp_path / "nope").exit_code == 2


def test_summary_file_appends_markdown(tmp_path):
    path = unpack("legacy-basic", tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    res = run_cli("check", path, "--format", "json", "--summary-file", summary)
    assert res.exit_code == 1
    json.loads(res.stdout)  # stdout stays pure JSON
    text = summary.read_text()
    assert text.startswith("# earlier step\n## kvfix check")
    assert "SCAN\\_COLLISION" in text and "### Findings (4)" in text
    run_cli("check", path, "--format", "plain", "--summary-file", summary)
    assert summary.read_text().count("## kvfix check") == 2


def test_write_flags_need_repair(tmp_path):
    path = unpack("legacy-basic", tmp_path)
    res = run_cli("check", path, "--yes")
    assert res.exit_code == 2 and "--repair" in res.output


def test_clean_fixture_repair_plans_nothing(tmp_path):
    path = unpack("prefixed-basic", tmp_path)
    before = tree_digest(path)
    res = run_cli("check", path, "--repair", "--format", "json")  # no --yes, no terminal: fine, nothing to do
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["repair"]["planned"] == []
    assert tree_digest(path) == before
