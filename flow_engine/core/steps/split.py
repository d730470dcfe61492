"""`{"type": "split", "variants": [{"path": P, "weight": W}, ...]}`: an A/B test.

The variant is a deterministic function of the run id and the step's location, in proportion to the
weights, so replays and the simulator agree; the run's `context.variants` records it under the
step's location (`path:index`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.ids import derive
from flow_engine.core.steps.base import ParseContext


@dataclass(frozen=True)
class Split:
    variants: tuple[tuple[str, float], ...]  # (path, weight), weights positive
    falls_through = False

    def choose(self, run_id: str, location: str) -> str:
        """The variant of run `run_id` at `location`: a uniform point in [0, total) from a hash."""
        total = sum(weight for _, weight in self.variants)
        point = int(derive("split", run_id, location, size_bytes=8), 16) / 2**64 * total
        for path, weight in self.variants:
            if point < weight:
                return path
            point -= weight
        return self.variants[-1][0]

    def run(self, execution: Any, path: str, index: int) -> str:
        location = f"{path}:{index}"
        chosen = self.choose(execution.run_id, location)
        execution.variants[location] = chosen
        execution.jumped(path, index, "variant", chosen)
        return chosen

    def describe(self) -> str:
        return "split " + " / ".join(f"{weight:g}" for _, weight in self.variants)

    def jumps(self) -> tuple[tuple[str, str], ...]:
        total = sum(weight for _, weight in self.variants)
        return tuple((f"{weight / total:.0%}", path) for path, weight in self.variants)

    def loop_problem(self, target: str) -> str:
        return f"split variant {json.dumps(target, ensure_ascii=False)} loops without waiting for the contact"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Split | None:
    variants = raw.get("variants")
    if not isinstance(variants, list) or not variants:
        context.problem(where, 'split requires "variants" (a non-empty list of {"path", "weight"})')
        return None
    parsed: list[tuple[str, float]] = []
    for number, variant in enumerate(variants):
        at = f"{where}.variants[{number}]"
        if not isinstance(variant, dict):
            context.problem(at, 'a variant must be an object {"path", "weight"}')
            continue
        path = variant.get("path")
        if not isinstance(path, str) or path not in context.path_names:
            context.problem(f"{at}.path", f"path {json.dumps(path, ensure_ascii=False)} does not exist")
            continue
        weight = variant.get("weight", 1)
        if not isinstance(weight, int | float) or isinstance(weight, bool) or not math.isfinite(weight) or weight <= 0:
            context.problem(f"{at}.weight", f"must be a positive number, got {json.dumps(weight)}")
            continue
        parsed.append((path, float(weight)))
    return Split(tuple(parsed)) if len(parsed) == len(variants) else None
