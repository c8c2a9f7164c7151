"""The plan's count of streams left alone stays exact beyond the named ones (SKIPPED_NAMED)."""

from kvfix.migrations.layout_records import SKIPPED_NAMED, Collected


def _full(col: Collected) -> None:
    for i in range(SKIPPED_NAMED):
        for what in ("stale", "orphan", "undecodable"):
            col.skip(what, (b"ns", b"named%d" % i), 1)


def test_a_stream_met_in_several_chunks_of_each_kind_counts_once_per_kind():
    col = Collected(False, 0)
    _full(col)
    late = (b"ns", b"late")
    for what in ("stale", "orphan", "stale", "undecodable", "orphan", "stale"):
        col.skip(what, late, 7)
    assert col.unnamed == 3
    col.skip("stale", (b"ns", b"later"), 1)
    col.skip("stale", (b"ns", b"later"), 1)
    assert col.unnamed == 4
    assert sum(len(getattr(col, w)) for w in ("stale", "orphan", "undecodable")) == 3 * SKIPPED_NAMED


def test_absorbing_a_later_part_counts_as_one_walk_would():
    one, first, later = Collected(False, 0), Collected(False, 0), Collected(False, 0)
    _full(one)
    _full(first)
    calls = [("stale", (b"ns", b"s%d" % i), 2) for i in range(5)] + [("orphan", (b"ns", b"o"), 1)] * 3
    for call in calls:
        one.skip(*call)
        later.skip(*call)
    first.absorb(later)
    assert first.unnamed == one.unnamed == 6
    assert (first.stale, first.orphan) == (one.stale, one.orphan)
