"""Namespace tokens in the propagate column family never appear in any output of stats, inspect or scan."""

from __future__ import annotations

import pytest
from conftest import run_cli
from stats_inspect_data import SECRET_TOKEN, rich_database

from kvfix.cli.options import FORMATS


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return rich_database(tmp_path_factory.mktemp("secret") / "db")


COMMANDS = [
    ["stats"],
    ["stats", "--top", "1000", "--namespace", "tenant_a"],
    ["inspect", "--raw", "--key-hex", b"__namespace_keys__".hex()],
    ["inspect", "--raw", "h"],
    ["inspect", "--raw", "t", "--namespace", "tenant_a"],
    ["scan", "--deep", "--pel"],
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_never_printed(db_path, fmt):
    for cmd in COMMANDS:
        res = run_cli(cmd[0], db_path, *cmd[1:], "--format", fmt)
        assert res.exit_code in (0, 1), (cmd, res.output)
        for text in (res.stdout, res.stderr):
            assert SECRET_TOKEN not in text, (cmd, fmt)
            assert SECRET_TOKEN.encode().hex() not in text, (cmd, fmt)
