"""ScansHitting (the fast form, one bisect per alias) answers exactly as scans_hitting (the
readable reference) for any cursors and alias, the edges (0-0, equal ids) included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvfix.analysis.releases import ScansHitting, scans_hitting
from kvfix.codec.metadata import StreamId

U64 = st.integers(min_value=0, max_value=2**64 - 1)
SMALL = st.integers(min_value=0, max_value=3)
ids = st.builds(StreamId, st.one_of(SMALL, U64), st.one_of(SMALL, U64))


@given(st.dictionaries(st.text(min_size=1, max_size=5), ids, max_size=8), st.lists(ids, min_size=1, max_size=8))
def test_fast_form_equals_the_reference(cursors: dict[str, StreamId], aliases: list[StreamId]) -> None:
    fast = ScansHitting(cursors)
    for alias in aliases:
        assert list(fast(alias)) == scans_hitting(alias, cursors)


def test_edges() -> None:
    cursors = {"a": StreamId(0, 0), "b": StreamId(5, 1), "c": StreamId(5, 2)}
    assert "XREAD 0" not in scans_hitting(StreamId(0, 0), cursors)
    assert list(ScansHitting(cursors)(StreamId(5, 2))) == scans_hitting(StreamId(5, 2), cursors)
    assert [s for s in scans_hitting(StreamId(5, 2), cursors) if s.startswith("XREADGROUP")] == [
        "XREADGROUP a >",
        "XREADGROUP b >",
    ]
