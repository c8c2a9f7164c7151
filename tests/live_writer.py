"""A Kvrocks-shaped primary for the live tests: ``python live_writer.py DB STOPFILE``.

Holds the database (RocksDB's LOCK) and, round after round, appends one entry to every
stream in key order, the entry and the stream's new metadata in one batch, as XADD does;
flushes every 10 rounds and compacts every 40.  Prints "open", then "round N" after each
round; stops when STOPFILE exists or after 5,000 rounds (it never runs unbounded).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import sys

from rocksdict import Options, Rdict, WriteBatch

from kvfix.codec.keys import InternalKey
from kvfix.codec.metadata import StreamId, decode_metadata


def main(path: str, stop: str) -> None:
    cfs = Rdict.list_cf(path, Options(raw_mode=True))
    db = Rdict(path, options=Options(raw_mode=True), column_families={c: Options(raw_mode=True) for c in cfs})
    meta_h, stream_h = db.get_column_family_handle("metadata"), db.get_column_family_handle("stream")
    meta = db.get_column_family("metadata")
    keys = sorted(k for k, _ in meta.items())
    print("open", flush=True)
    for r in range(5000):
        if os.path.exists(stop):
            break
        for k in keys:
            m = decode_metadata(meta[k])
            t = m.stream
            nid = StreamId(t.last_generated_id.ms + 1, 0)
            ns = k[1 : 1 + k[0]]
            b = WriteBatch(raw_mode=True)
            b.put(
                InternalKey(ns, k[1 + k[0] :], m.version, struct.pack(">QQ", nid.ms, 0)).encode(),
                b"\x01f\x01v",
                stream_h,
            )
            tail = dataclasses.replace(t, last_generated_id=nid, last_entry_id=nid, entries_added=t.entries_added + 1)
            b.put(k, dataclasses.replace(m, size=m.size + 1, stream=tail).encode(), meta_h)
            db.write(b)
        if r % 10 == 9:
            db.flush()
        if r % 40 == 39:
            db.compact_range(None, None)
        print(f"round {r + 1}", flush=True)
    db.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
