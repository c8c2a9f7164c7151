"""What a second planning process writes per stream, and how it joins ours (migrate's
JSON document and its plan file: kvfix.migrations.plan_parts.PlanSink)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvfix.migrations import planfile
from kvfix.migrations.plan_parts import PlanSink
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.render.migrate_json import PlanJson


class PartOutputs:
    """What a second planning process writes per stream (kvfix.migrations.plan_parts.PlanSink):
    its JSON document part and its plan lines, joined after ours into the document and the
    plan file being written or compared."""

    def __init__(self, json: PlanJson | None, lines: planfile.PlanFileWriter | planfile.PlanFileCheck | None) -> None:
        self.json, self.lines = json, lines
        self.part: planfile.LinesPart | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"json": self.json, "lines": None, "part": self.part}

    def add(self, sp: StreamPlan) -> None:
        if self.json is not None:
            self.json.add(sp)
        if self.part is not None:
            self.part.add(sp)

    def fork(self, workdir: str) -> PartOutputs:
        twin = PartOutputs(None if self.json is None else self.json.fork(workdir), None)
        if self.lines is not None:
            twin.part = planfile.LinesPart(Path(workdir) / "plan-lines.z")
        return twin

    def join(self, later: PlanSink) -> None:
        assert isinstance(later, PartOutputs)
        if self.json is not None and later.json is not None:
            self.json.join(later.json)
        if self.lines is not None and later.part is not None:
            self.lines.add_raw(later.part.raws())
