"""Kvrocks' rocksdb.compression can be no, snappy, lz4, zstd or zlib: scan reads them all.

The fixture's records are rewritten into a database whose SST files use each compression
(rocksdict directly, as a server with that setting would have written them), then scan
must report exactly what it reports for the original.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dump_all, scan_json_cli, unpack
from rocksdict import DBCompressionType, Options, Rdict

COMPRESSIONS = ["snappy", "lz4", "zstd", "zlib"]


def _rewrite(records: dict[str, dict[bytes, bytes]], target: Path, compression: str) -> None:
    def opts() -> Options:
        o = Options(raw_mode=True)
        o.create_if_missing(True)
        o.create_missing_column_families(True)
        o.set_compression_type(getattr(DBCompressionType, compression)())
        return o

    db = Rdict(str(target), options=opts(), column_families={cf: opts() for cf in records if cf != "default"})
    try:
        for cf, items in records.items():
            handle = db.get_column_family(cf)
            for key, value in items.items():
                handle[key] = value
            handle.flush(True)
    finally:
        db.close()
    (target / "rocksdict-config.json").unlink(missing_ok=True)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_scan_reads_every_compression(tmp_path: Path, compression: str) -> None:
    original = unpack("legacy-basic", tmp_path)
    records = dump_all(original)
    assert records["stream"], "the fixture has stream records"
    target = tmp_path / f"kvrocks-{compression}" / "db"
    _rewrite(records, target, compression)
    assert list(target.glob("*.sst")), "records were flushed into SST files"
    assert dump_all(target.parent) == records

    code_a, report_a = scan_json_cli(original)
    code_b, report_b = scan_json_cli(target.parent)
    assert code_a == code_b == 1
    for report in (report_a, report_b):
        report["db"].pop("path")
        report["db"]["column_families"].sort()  # creation order differs, the set does not
    assert report_a == report_b
