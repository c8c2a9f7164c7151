"""Findings for the release the operator will start (``--target``).

scan and check describe the data for a release that reads the prefixed layout (2.10 and
later) unless told otherwise.  For a 2.9 target (after ``migrate --to legacy``) the
legacy layout is the right one, an entry scan misreads only 16-byte legacy records
(empty group names), and prefixed records are what makes the server abort.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from kvfix.analysis.findings import Finding

Target = Literal["2.10", "2.9"]
TARGETS: tuple[Target, ...] = ("2.10", "2.9")


def for_target(findings: list[Finding], target: Target) -> list[Finding]:
    """``findings`` (made for 2.10+) as they stand for ``target``."""
    if target == "2.10":
        return findings
    out = []
    for f in findings:
        if f.code == "LEGACY_LAYOUT":
            continue  # the layout 2.9 reads
        if f.code == "SCAN_COLLISION":
            empty = int(f.details.get("empty_names", 0))
            if not empty:
                continue  # 2.8-2.9 skip subkeys longer than 16 bytes
            f = dataclasses.replace(
                f, message=f"{empty} legacy records with empty group names are misread as entries by 2.8-2.9"
            )
        elif f.code == "ROLLBACK_HAZARD":
            f = dataclasses.replace(
                f,
                severity="error",
                message="prefixed group records: a 2.9 server aborts (std::out_of_range) on XRANGE/XREAD of "
                "this stream; run kvfix migrate --to legacy",
            )
        elif f.code == "MAX_MS_ENTRY":
            f = dataclasses.replace(f, severity="info")
        out.append(f)
    return out
