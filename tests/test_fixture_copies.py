"""tests/fixtures must be byte-identical copies of the shared fixtures, when those are present."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CANDIDATES = [Path("/work/shared/fixtures"), Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"]


def _shared() -> Path:
    for c in CANDIDATES:
        if c.is_dir():
            return c
    pytest.skip("no shared fixtures directory (/work/shared/fixtures or ../shared/fixtures) on this machine")


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_every_shared_fixture_file_is_copied_byte_for_byte():
    shared = _shared()
    files = sorted(p for p in shared.rglob("*") if p.is_file())
    assert files, f"{shared} is empty"
    assert any(p.name.endswith(".tar.gz") for p in files)
    for src in files:
        rel = src.relative_to(shared)
        copy = FIXTURES / rel
        assert copy.is_file(), f"tests/fixtures/{rel} is missing"
        assert _digest(copy) == _digest(src), f"tests/fixtures/{rel} differs from {src}"


def test_every_fixture_has_a_manifest():
    for tar in FIXTURES.glob("*.tar.gz"):
        assert (FIXTURES / (tar.name[: -len(".tar.gz")] + ".json")).is_file()
