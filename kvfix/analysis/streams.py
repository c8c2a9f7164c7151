"""Per-stream analysis: classify and file each record of a live stream (findings: stream_findings)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import cast

from kvfix.analysis.model import Collision, ConsumerInfo, GroupInfo, PelInfo, StreamReport
from kvfix.analysis.releases import ScansHitting, legacy_misread_by
from kvfix.analysis.stream_findings import stream_findings
from kvfix.codec.ints import U64_MAX
from kvfix.codec.metadata import ZERO_ID, StreamId
from kvfix.codec.stream import (
    ENTRY_KEY_LEN,
    GROUP_NAME_AT,
    KIND_VALUE,
    LEGACY,
    PREFIX_MARK,
    ZERO8,
    ConsumerKey,
    ConsumerValue,
    EntryKey,
    GroupRecordKey,
    GroupValue,
    PelKey,
    PelValue,
    RecordKind,
    alias_id,
    classify,
    consumer_name,
    group_record_shape,
)
from kvfix.textsafe import label


class LegacyRecords:
    """A stream's legacy group records in key order, kept as the walk read them.

    Single records are (kind, group, subkey); a run of one group's PEL records is
    (kind, group, pairs, start, stop, n): whole (key, value) pairs[start:stop] with the
    subkey at key[n:].  The stream's findings need only the count, the first and last
    alias ids (alias order is key order) and the 16-byte subkeys; the Collision of each
    record is built when a report asks for ``collisions`` (see StreamReport).
    """

    __slots__ = ("count", "empty", "items")

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.count = 0
        self.empty = 0  # 16-byte subkeys (empty group names): 2.8-2.9 misread them too

    def add(self, kind: RecordKind, group: bytes, sub: bytes) -> None:
        self.items.append((kind, group, sub))
        self.count += 1
        if len(sub) == ENTRY_KEY_LEN:
            self.empty += 1

    def add_run(self, kind: RecordKind, group: bytes, pairs: list[tuple[bytes, bytes]], start: int, n: int) -> None:
        stop = len(pairs)
        if stop > start:  # PEL subkeys are 24+ bytes: never empty-named
            self.items.append((kind, group, pairs, start, stop, n))
            self.count += stop - start

    def add_counted(self, kind: RecordKind, group: bytes, first: bytes, last: bytes, count: int) -> None:
        """A run of one group's PEL records known only by its first and last subkeys (see drop_pel)."""
        self.items.append((kind, group, first, last, count))
        self.count += count

    def extend(self, later: LegacyRecords) -> None:
        self.items.extend(later.items)
        self.count += later.count
        self.empty += later.empty

    def subkeys(self) -> Iterator[tuple[RecordKind, bytes, bytes]]:
        for item in self.items:
            if len(item) == 3:
                yield item
            elif len(item) == 5:
                raise ValueError("the records of this stream were counted, not kept (drop_pel)")
            else:
                kind, group, pairs, start, stop, n = item
                for key, _ in pairs[start:stop]:
                    yield kind, group, key[n:]

    def _edge(self, last: bool) -> bytes:
        item = self.items[-1 if last else 0]
        if len(item) == 3:
            return item[2]
        if len(item) == 5:
            return item[3 if last else 2]
        _, _, pairs, start, stop, n = item
        return pairs[stop - 1 if last else start][0][n:]

    def alias_range(self) -> tuple[StreamId, StreamId]:
        """Smallest and largest alias id (the first and last record's: aliases follow key order)."""
        if not self.items:
            return ZERO_ID, ZERO_ID
        return alias_id(self._edge(False)), alias_id(self._edge(True))

    def build(self, report: StreamReport) -> list[Collision]:
        return list(self.iter(report))

    def runs(self, report: StreamReport) -> Iterator[tuple[Collision, int]]:
        """Runs of records that share group, kind, alias id, scans and releases: (the first's Collision, count).

        A group's PEL records share their alias id (the name's length and first 8 bytes),
        so a PEL of a million is one run, whether its records were kept or only counted.
        """
        scans = _scans_of(report)
        head = b""
        alias, hit = ZERO_ID, cast(tuple[str, ...], ())
        for item in self.items:
            if len(item) == 3:
                kind, group, sub = item
                count = 1
            elif len(item) == 5:
                kind, group, sub, _, count = item
            else:
                kind, group, pairs, start, stop, n = item
                sub, count = pairs[start][0][n:], stop - start
            if sub[:16] != head:  # a group's records share their alias id (and so their scans)
                head = sub[:16]
                alias = alias_id(sub)
                hit = scans(alias)
            yield Collision(kind, group, alias, sub, hit, legacy_misread_by(sub)), count

    def iter(self, report: StreamReport) -> Iterator[Collision]:
        """The Collision of each record, in key order (the report's groups give the cursors)."""
        scans = _scans_of(report)
        head = b""
        alias, hit = ZERO_ID, cast(tuple[str, ...], ())
        for kind, group, sub in self.subkeys():
            if sub[:16] != head:  # the records of one group share their alias id
                head = sub[:16]
                alias = alias_id(sub)
                hit = scans(alias)
            yield Collision(kind, group, alias, sub, hit, legacy_misread_by(sub))


def _scans_of(report: StreamReport) -> ScansHitting:
    """Which scans meet an alias id, given the cursors of the stream's groups."""
    layouts_of: dict[bytes, int] = {}
    for g in report.groups.values():
        layouts_of[g.name] = layouts_of.get(g.name, 0) + 1
    cursors = {
        (label(g.name) if layouts_of[g.name] == 1 else f"{label(g.name)} [{g.layout}]"): g.value.last_delivered_id
        for g in report.groups.values()
        if g.value is not None
    }
    return ScansHitting(cursors)


_GROUP, _CONSUMER, _PEL = 1, 2, 3
#: kind value -> (layout, where the group name starts in the subkey, role), for add_chunk.
_FILING = {
    k.value: (layout, GROUP_NAME_AT[layout], {"group": _GROUP, "consumer": _CONSUMER, "pel": _PEL}[k.role])
    for k in RecordKind
    if (layout := k.layout) is not None
}
_U64_AT = struct.Struct(">Q").unpack_from


class StreamAnalyzer:
    """Feed it a live stream's (subkey, value) pairs in key order, then call finish()."""

    def __init__(self, report: StreamReport, defer: bool = False) -> None:
        self.report = report
        self._legacy = LegacyRecords()
        #: With ``defer`` (the second process of a parallel deep scan), add_chunk counts plain
        #: entries and keeps every other record as raw (subkey, value) pairs for the process
        #: that merges the result to decode (replay, absorb): raw bytes travel back through
        #: pickle far faster than decoded records do.
        self.deferred: list[tuple[bytes, bytes]] | None = [] if defer else None
        #: The PEL run add_chunk is in: whole keys of length _run_len starting with _run_head
        #: belong to _run_group (see add_chunk).
        self._run_head = b""
        self._run_len = -1
        self._run_kind = RecordKind.LEGACY_PEL
        self._run_group: GroupInfo | None = None
        self._run_start = 0
        self._run_n = 0
        #: False: PEL records are counted (and summed up as collisions) but not kept, so a
        #: group's PEL of any size costs nothing per record (a report without --pel/--records).
        self.keep_pel = True
        #: With keep_pel False: also count each dropped PEL record's owner (check needs it).
        self.count_owners = False

    def add(self, sub: bytes, value: bytes) -> None:
        rep = self.report
        c = classify(sub, value)
        key, val = c.key, c.value
        if key is None or val is None:
            rep.records["unknown"] += 1
            rep.undecodable.append((sub, c.error or "undecodable"))
            return
        if len(c.readings) > 1:
            rep.ambiguous.append((sub, tuple(k.value for k in c.readings)))
        if type(key) is EntryKey:
            rep.records["entry"] += 1
            if key.id.ms == U64_MAX:
                rep.max_ms_entries.append(key.id)
            return
        self._group_record(sub, key, val)  # type: ignore[arg-type]

    def _group_record(self, sub: bytes, key: GroupRecordKey, val: object) -> None:
        """Count and file a group record (any layout) that classify() read as ``key``/``val``."""
        rep = self.report
        kind = key.kind
        rep.records[KIND_VALUE[kind]] += 1
        layout = key.layout
        group = rep.groups.get((layout, key.group)) or rep.group(layout, key.group)
        if layout == LEGACY:
            self._legacy.add(kind, group.name, sub)  # the group's own name object, shared
        cls = type(key)
        if cls is PelKey:
            if type(val) is PelValue:
                group.pel.append(PelInfo(key.entry_id, val))  # type: ignore[union-attr]
        elif cls is ConsumerKey:
            if type(val) is ConsumerValue:
                group.consumers[key.consumer] = ConsumerInfo(key.consumer, val)  # type: ignore[union-attr]
        elif type(val) is GroupValue:
            group.value = val

    def _end_run(self) -> None:
        """Count and file the PEL records of the current run read since the last call."""
        g = self._run_group
        if g is None:
            return
        pairs, start = g.raw_pel, self._run_start
        count = len(pairs) - start
        self.report.records[KIND_VALUE[self._run_kind]] += count
        if not self.keep_pel and count:
            if self._run_kind is RecordKind.LEGACY_PEL:
                n = self._run_n
                self._legacy.add_counted(self._run_kind, g.name, pairs[start][0][n:], pairs[-1][0][n:], count)
            self.dropped(g, g.drop_pel(start, self.count_owners))
        elif self._run_kind is RecordKind.LEGACY_PEL:
            self._legacy.add_run(self._run_kind, g.name, pairs, start, self._run_n)
        self._run_start = len(pairs)

    def dropped(self, g: GroupInfo, pairs: list[tuple[bytes, bytes]]) -> None:
        """PEL records about to be forgotten (keep_pel False): whole (key, value), entry id at g.pel_at."""

    def _stop_run(self) -> None:
        self._end_run()
        self._run_group, self._run_len, self._run_head = None, -1, b""

    def add_chunk(self, chunk: list[tuple[bytes, bytes]], n: int) -> None:
        """add() for whole keys in key order (subkey = key[n:]), with fast paths.

        Plain entries: kvfix.codec.stream.is_plain_entry inlined (no call, no subkey
        slice, no tuple): it accepts only records that classify() reads as an entry and
        nothing else, with a valid value (single-byte varint lengths tiling the value into
        a non-zero even number of items), and counts them as add() would.  Well-formed
        group records (group_record_shape(), which answers only where classify() has one
        reading) are filed raw in their GroupInfo, undecoded.  After such a PEL record,
        the records with the same key length and the same key up to the end of the group
        name are that group's next PEL records when their value fits (the same shape:
        what follows the name is 16 bytes, in key order never a zero ms after a non-zero
        one), so a run costs a length, a prefix and a value check per record.  Every other
        record goes through add().  A subclass that overrides add() gets every record there.
        """
        add = self.add
        if type(self).add is not StreamAnalyzer.add:
            self._stop_run()
            for key, value in chunk:
                add(key[n:], value)
            return
        rep = self.report
        groups, records = rep.groups, rep.records
        legacy = self._legacy
        legacy_items, legacy_count = legacy.items, 0
        deferred = self.deferred
        n16 = n + 16
        n7 = n + 7
        zero8, mark = ZERO8, PREFIX_MARK
        u64_at = _U64_AT
        run_len, run_head = self._run_len, self._run_head
        run_pairs = self._run_group.raw_pel if self._run_group is not None else []
        entries = 0
        for kv in chunk:
            key, value = kv
            k = len(key)
            if k == n16:
                low = key[n7]  # last byte of id.ms: 1..254 rules out both 0x00*8 and 0xFF*8
                if (0 < low < 255) or not (key.startswith(zero8, n) or key.startswith(mark, n)):
                    m = len(value)
                    p = 0
                    while p < m:
                        b = value[p]
                        if b > 127:
                            break
                        p += b + 1
                        if p >= m:
                            break
                        b = value[p]
                        if b > 127:
                            break
                        p += b + 1
                    else:
                        if m and p == m:  # the lengths tile the value exactly
                            entries += 1
                            continue
            elif k == run_len and key.startswith(run_head):
                m = len(value)
                if m >= 24 and u64_at(value, 16)[0] == m - 24:  # PEL value shape
                    run_pairs.append(kv)
                    continue
            if run_len >= 0:
                self._stop_run()
                run_len, run_head = -1, b""
            sub = key[n:]
            if deferred is not None:
                deferred.append((sub, value))
                continue
            shape = group_record_shape(sub, value)
            if shape is None:
                add(sub, value)
                continue
            kind, end = shape
            value_of_kind = kind._value_  # a str: hashing the enum member would call Python code
            layout, start, role = _FILING[value_of_kind]
            name = sub[start:end]
            g = groups.get((layout, name)) or rep.group(layout, name)
            if role == _PEL:
                self._run_group, self._run_kind, self._run_n = g, kind, n
                run_pairs = g.raw_pel
                g.pel_offset(n + end)
                self._run_start = len(run_pairs)
                run_pairs.append(kv)
                run_len, run_head = k, key[: n + end]
                self._run_len, self._run_head = run_len, run_head
                continue
            records[value_of_kind] += 1
            if layout == LEGACY:  # never a 16-byte subkey here (group_record_shape wants 17+)
                legacy_items.append((kind, g.name, sub))
                legacy_count += 1
            if role == _GROUP:
                g.file_value(value)
            else:
                g.file_consumer(consumer_name(sub, layout, name), value)
        legacy.count += legacy_count
        self._end_run()
        if entries:
            records["entry"] += entries

    def _add_subkeys(self, records: list[tuple[bytes, bytes]]) -> None:
        """add() for (subkey, value) pairs in key order: add_chunk with an empty prefix."""
        self._stop_run()
        self.add_chunk(records, 0)
        self._stop_run()

    def replay(self) -> None:
        """Decode the records a deferring analyzer kept raw (see ``deferred``)."""
        records, self.deferred = self.deferred, None
        if records:
            self._add_subkeys(records)

    def absorb(self, later: StreamAnalyzer) -> None:
        """Take in what another analyzer of the same stream saw in the key range after ours.

        (A parallel deep scan may split one stream's entries between two processes.)  Lists
        keep key order because ``later``'s records all sort after ours.
        """
        self._stop_run()
        later._stop_run()
        rep, other = self.report, later.report
        rep.records.update(other.records)
        rep.ambiguous.extend(other.ambiguous)
        rep.undecodable.extend(other.undecodable)
        rep.max_ms_entries.extend(other.max_ms_entries)
        for ident, g in other.groups.items():
            mine = rep.groups.get(ident)
            if mine is None:
                rep.groups[ident] = g
                continue
            if g.value is not None:
                mine.value = g.value
            mine.consumers.update(g.consumers)
            mine.absorb_pel(g)
        self._legacy.extend(later._legacy)
        if later.deferred:
            self._add_subkeys(later.deferred)  # after our own records: key order is kept

    def finish(self) -> StreamReport:
        self._stop_run()
        rep = self.report
        legacy = self._legacy
        lo, hi = legacy.alias_range()
        rep.defer_collisions(legacy)
        rep.findings.extend(stream_findings(rep, legacy.count, legacy.empty, lo, hi))
        return rep
