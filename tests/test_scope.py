"""--namespace, --stream and --match: scan and check look at the chosen streams only (and
their dead versions), on the real multi-tenant fixture and on generated databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, unpack
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent.parent / "schemas"


def _json(command: str, path: Path, *args: str) -> dict:
    res = run_cli(command, path, "--format", "json", *args)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return unpack("legacy-namespaces", tmp_path_factory.mktemp("scope"))


@pytest.mark.parametrize("command", ["scan", "check"])
def test_each_filter_narrows_to_what_it_names(tenants: Path, command: str) -> None:
    whole = _json(command, tenants)
    everything = {(s["namespace"], s["key"]) for s in whole["streams"]}
    namespaces = {ns for ns, _ in everything}
    assert len(namespaces) > 1 and "scope" not in whole
    for ns in namespaces:
        doc = _json(command, tenants, "--namespace", ns)
        assert {(s["namespace"], s["key"]) for s in doc["streams"]} == {x for x in everything if x[0] == ns}
        assert doc["scope"]["namespace_hex"] == ns.encode().hex()
        Draft202012Validator(json.loads((SCHEMAS / f"{command}.schema.json").read_text())).validate(doc)
    key = sorted(everything)[0][1]
    doc = _json(command, tenants, "--stream", key)
    assert {s["key"] for s in doc["streams"]} == {key}
    assert {(s["namespace"], s["key"]) for s in doc["streams"]} == {x for x in everything if x[1] == key}
    doc = _json(command, tenants, "--match", key[:1] + "*")
    assert {(s["namespace"], s["key"]) for s in doc["streams"]} == {x for x in everything if x[1][:1] == key[:1]}
    # filters combine; summaries count only what is in scope
    doc = _json(command, tenants, "--namespace", sorted(namespaces)[0], "--stream", key, "--stream", "nosuch")
    assert doc["summary"]["streams"] == len(doc["streams"]) <= 1


def test_a_scoped_scan_says_so_and_counts_dead_versions_not_orphans(tmp_path: Path) -> None:
    from test_scale_walk import adversarial_db

    path = adversarial_db(tmp_path / "db", False)
    whole = _json("scan", path)
    assert whole["garbage"]["orphan"]["records"] > 0 and whole["garbage"]["stale"]["records"] > 0
    doc = _json("scan", path, "--namespace", "tenant-a", "--stream", "s0")
    assert [(s["namespace"], s["key"]) for s in doc["streams"]] == [("tenant-a", "s0")]
    mine = next(s for s in whole["streams"] if (s["namespace"], s["key"]) == ("tenant-a", "s0"))
    assert doc["streams"][0] == mine  # the same stream, counted the same, dead versions included
    assert doc["streams"][0]["records"]["stale"] > 0
    assert doc["garbage"]["orphan"]["records"] == 0
    text = run_cli("scan", path, "--namespace", "tenant-a", "--stream", "s0").stdout
    assert "scope: namespace tenant-a · streams s0 (orphans and other keys' records not looked for)" in text


def test_a_scoped_migrate_moves_only_the_chosen_streams_and_its_plan_keeps_the_scope(tmp_path: Path) -> None:
    path = unpack("legacy-namespaces", tmp_path)
    before = _json("scan", path)
    legacy = sorted({(s["namespace"], s["key"]) for s in before["streams"] if s["layout"] == "legacy"})
    assert len({ns for ns, _ in legacy}) > 1
    ns = legacy[0][0]
    plan = tmp_path / "plan.jsonl"
    dry = run_cli("migrate", path, "--dry-run", "--namespace", ns, "--save-plan", plan)
    assert dry.exit_code == 0, dry.output
    assert f"scope: namespace {ns} (only these streams are planned and moved)" in dry.stdout
    header = json.loads(plan.read_text().splitlines()[0])
    assert header["options"]["scope"]["namespace_hex"] == ns.encode().hex()
    # the saved scope is what --plan applies, whatever the command line says
    real = run_cli("migrate", path, "--plan", plan, "--yes", "--no-backup", "--format", "json")
    assert real.exit_code == 0, real.output
    doc = json.loads(real.stdout)
    assert doc["scope"]["namespace_hex"] == ns.encode().hex() and doc["result"]["verified"] is True
    Draft202012Validator(json.loads((SCHEMAS / "migrate.schema.json").read_text())).validate(doc)
    after = {(s["namespace"], s["key"]): s["layout"] for s in _json("scan", path)["streams"]}
    for stream in legacy:
        assert after[stream] == ("prefixed" if stream[0] == ns else "legacy"), stream
    # the database changed since the plan: applying it again is refused
    assert run_cli("migrate", path, "--plan", plan, "--yes", "--no-backup").exit_code == 2
    # and a new run over that namespace finds nothing left to move
    rerun = run_cli("migrate", path, "--yes", "--no-backup", "--namespace", ns, "--format", "json")
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["summary"]["streams_to_migrate"] == 0


def test_repair_refuses_a_scope(tenants: Path) -> None:
    res = run_cli("check", tenants, "--repair", "--dry-run", "--namespace", "x")
    assert res.exit_code == 2 and "do not go with --repair" in res.output
