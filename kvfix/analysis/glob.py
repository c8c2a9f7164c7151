"""Redis-style globs (``--match``), read exactly as Redis' stringmatchlen reads them.

The pattern is read exactly as Redis' stringmatchlen (and Kvrocks' StringMatch) read it, into
tokens that each take one byte (a set of accepted bytes) or any run of bytes (``*``).  Matching
then never backtracks: ``head*m1*m2*...*tail`` matches iff head is a prefix, tail a suffix, and
each middle segment occurs, leftmost first, between them.  A segment is a fixed-width run of
byte classes, searched with a quantifier-free regex (or bytes.find), so a hostile key or
pattern costs at most len(key) x len(segment), never the exponential time of a backtracking
``.*`` regex (which does not finish ``*A*A*A*B`` on 100 kB of ``A``).
"""

from __future__ import annotations

import re

Token = frozenset[int] | None  # None: ``*``
_ALL_BYTES = frozenset(range(256))


def glob_tokens(pattern: bytes) -> list[Token]:
    """Redis' reading of a glob: ``*``, ``?``, ``[...]`` (``^`` negates, ``a-z`` ranges in either
    order, ``\\x`` escapes), ``\\x`` outside brackets; a trailing ``\\`` is literal and an
    unterminated ``[`` closes at the end of the pattern (Redis; Kvrocks refuses such a pattern).
    Ranges compare bytes unsigned (Kvrocks; Redis on x86 compares signed chars)."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
            i += 1
        elif c == 0x3F:  # ?
            tokens.append(_ALL_BYTES)
            i += 1
        elif c == 0x5B:  # [
            accepted, i = _bracket(pattern, i + 1)
            tokens.append(accepted)
        elif c == 0x5C and i + 1 < n:  # backslash: the next byte, literally
            tokens.append(frozenset((pattern[i + 1],)))
            i += 2
        else:
            tokens.append(frozenset((c,)))
            i += 1
    return tokens


def _bracket(pattern: bytes, i: int) -> tuple[frozenset[int], int]:
    """The set ``[...]`` starting at i (after the ``[``) accepts, and the index after it."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # ^
    i += negate
    members: set[int] = set()
    while i < n and pattern[i] != 0x5D:  # ]
        if pattern[i] == 0x5C and i + 1 < n:
            members.add(pattern[i + 1])
            i += 2
        elif i + 2 < n and pattern[i + 1] == 0x2D:  # a-z (Redis takes any byte as the end, even ])
            lo, hi = sorted((pattern[i], pattern[i + 2]))
            members.update(range(lo, hi + 1))
            i += 3
        else:
            members.add(pattern[i])
            i += 1
    accepted = _ALL_BYTES - members if negate else frozenset(members)
    return accepted, i + 1  # past the ], or past the end when unterminated


def _segment_regex(segment: list[frozenset[int]]) -> re.Pattern[bytes]:
    parts = []
    for accepted in segment:
        if not accepted:
            parts.append(b"(?!)")
        elif len(accepted) == 1:
            parts.append(b"\\x%02x" % next(iter(accepted)))
        else:
            parts.append(b"[" + b"".join(_ranges(accepted)) + b"]")
    return re.compile(b"".join(parts))


def _ranges(accepted: frozenset[int]) -> list[bytes]:
    out, values = [], sorted(accepted)
    start = prev = values[0]
    for v in [*values[1:], -1]:
        if v != prev + 1:
            out.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
            start = v
        prev = v
    return out


class _Segment:
    """A fixed-width run of byte classes: found by bytes.find when every class is one byte."""

    __slots__ = ("literal", "regex", "width")

    def __init__(self, segment: list[frozenset[int]]) -> None:
        self.width = len(segment)
        literal = all(len(a) == 1 for a in segment)
        self.literal = bytes(next(iter(a)) for a in segment) if literal else None
        self.regex = None if literal else _segment_regex(segment)

    def at(self, data: bytes, pos: int) -> bool:
        if self.literal is not None:
            return data.startswith(self.literal, pos)
        return self.regex.match(data, pos) is not None  # type: ignore[union-attr]

    def find(self, data: bytes, pos: int, end: int) -> int:
        """End of the leftmost occurrence within data[pos:end], or -1."""
        if self.literal is not None:
            found = data.find(self.literal, pos, end)
            return -1 if found < 0 else found + self.width
        m = self.regex.search(data, pos, end)  # type: ignore[union-attr]
        return -1 if m is None else m.end()


class Glob:
    """A compiled Redis glob; ``match(data)`` tells whether all of data matches.

    A pattern of only ``*`` matches the empty key too (Kvrocks; Redis 7's loop ends at once on
    an empty string, though its SCAN treats ``*`` as "everything" anyway).
    """

    __slots__ = ("head", "middle", "pattern", "star", "tail")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        segments: list[list[frozenset[int]]] = [[]]
        for token in glob_tokens(pattern):
            if token is None:
                segments.append([])
            else:
                segments[-1].append(token)
        self.star = len(segments) > 1
        self.head = _Segment(segments[0])
        self.tail = _Segment(segments[-1]) if self.star else self.head
        self.middle = [_Segment(s) for s in segments[1:-1]]

    def match(self, data: bytes) -> bool:
        n = len(data)
        if not self.star:
            return n == self.head.width and self.head.at(data, 0)
        end = n - self.tail.width
        if end < self.head.width or not self.head.at(data, 0) or not self.tail.at(data, end):
            return False
        pos = self.head.width
        for segment in self.middle:
            pos = segment.find(data, pos, end)
            if pos < 0:
                return False
        return True

    __call__ = match


def glob_regex(pattern: bytes) -> Glob:
    """The compiled glob."""
    return Glob(pattern)
