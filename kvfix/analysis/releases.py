"""Which Kvrocks server builds misread which stream records in an entry scan.

From shared/kvrocks-format.md section 6:
- builds before 2024-02-23 (2.6.x, 2.7.x code) decode every in-range record as an entry;
- builds from 2024-02-23 (2.8.x, 2.9.x) skip subkeys longer than 16 bytes, so only a
  16-byte legacy record (an empty-named group) is misread; they abort on prefixed records;
- 2.10.0 and later take anything not starting with 0xFF*8 for an entry.
"""

from __future__ import annotations

from bisect import bisect_left

from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ENTRY_KEY_LEN

R_27 = "2.6-2.7"
R_29 = "2.8-2.9"
R_210 = "2.10+"
RELEASE_LABELS = {
    R_27: "releases 2.6.x-2.7.x and development builds before 2024-02-23",
    R_29: "releases 2.8.x-2.9.x and development builds 2024-02-23 to 2024-07-17",
    R_210: "releases 2.10.0 and later",
}


def legacy_misread_by(subkey: bytes) -> tuple[str, ...]:
    """Releases whose entry scans take this legacy record for an entry."""
    if len(subkey) == ENTRY_KEY_LEN:
        return (R_27, R_29, R_210)
    return (R_27, R_210)


def scans_hitting(alias: StreamId, group_cursors: dict[str, StreamId]) -> list[str]:
    """Entry scans that reach a record sitting at ``alias``.

    group_cursors maps a shown group name to its last_delivered_id: ``XREADGROUP ... >``
    reads entries after that id, so it reaches the record when the cursor is below it.
    """
    scans = ["XRANGE - +", "XREVRANGE + -", "XINFO STREAM FULL"]
    if (alias.ms, alias.seq) > (0, 0):
        scans.insert(2, "XREAD 0")
    scans.append(f"XRANGE/XREVRANGE over {alias}")
    for name, cursor in sorted(group_cursors.items()):
        if (cursor.ms, cursor.seq) < (alias.ms, alias.seq):
            scans.append(f"XREADGROUP {name} >")
    return scans


class ScansHitting:
    """scans_hitting for many aliases of one stream: O(log groups) per alias, not O(groups).

    The groups whose cursor is below an alias are the first k in cursor order; the
    XREADGROUP lines for each k are built once and shared.  Same answers as
    :func:`scans_hitting`.
    """

    def __init__(self, group_cursors: dict[str, StreamId]) -> None:
        by_cursor = sorted(((c.ms, c.seq), name) for name, c in group_cursors.items())
        self._cursors = [c for c, _ in by_cursor]
        self._names = [name for _, name in by_cursor]
        self._lines: dict[int, tuple[str, ...]] = {}

    def __call__(self, alias: StreamId) -> tuple[str, ...]:
        point = (alias.ms, alias.seq)
        k = bisect_left(self._cursors, point)
        lines = self._lines.get(k)
        if lines is None:
            lines = self._lines[k] = tuple(f"XREADGROUP {name} >" for name in sorted(self._names[:k]))
        head = (
            ("XRANGE - +", "XREVRANGE + -", "XREAD 0", "XINFO STREAM FULL")
            if point > (0, 0)
            else (
                "XRANGE - +",
                "XREVRANGE + -",
                "XINFO STREAM FULL",
            )
        )
        return (*head, f"XRANGE/XREVRANGE over {alias}", *lines)
