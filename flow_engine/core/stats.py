"""What a flow's runs did, summed: runs by status, and per step how many runs reached it, went on from
it, and stopped at it (waiting, completed, expired, failed, interrupted) — from the runs' trails
(core/trail.py) and their status and last step. Pure: the store aggregates rows (adapters/runs.py),
this turns them into a funnel, the table `flow-engine stats` prints and the counts `graph --stats` draws.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from flow_engine.core.trail import START

# What ended a run, as its status says; `waiting`: still running, paused at that step.
STOPPED = ("waiting", "completed", "expired", "failed", "interrupted")
# What resumes a paused run and continues at the next step (the others: their own edges).
_ONWARD = ("reply", "delay")
_ENDING = ("expire", "interrupt")  # a paused run ended without going on


@dataclass
class StepStats:
    reached: int = 0  # runs whose trail holds the step (a run that loops counts once)
    passes: int = 0  # times it was run (or resumed) in all
    went_on: int = 0  # times a run went on from it to another step, in the same event or when resumed
    stopped: Counter[str] = field(default_factory=Counter)  # runs whose last step it is, by STOPPED


@dataclass
class FlowStats:
    by_status: Counter[str] = field(default_factory=Counter)
    steps: dict[str, StepStats] = field(default_factory=dict)  # by location ("path:index", "start")
    edges: Counter[tuple[str, ...]] = field(default_factory=Counter)  # (location, *edge) -> times taken

    @property
    def runs(self) -> int:
        return sum(self.by_status.values())

    @property
    def completion_rate(self) -> float | None:
        """Completed runs among the runs that ended or wait (None: no run)."""
        return self.by_status["completed"] / self.runs if self.runs else None

    def step(self, where: str) -> StepStats:
        return self.steps.setdefault(where, StepStats())


def edge_of(where: str, kind: str, via: str | None, to: str | None, end: str | None) -> tuple[str, ...] | None:
    """Which edge of the flowchart an entry took: ("route", intent, path) from the start, ("jump", via, path),
    ("next",) to the next step (or the end), ("timeout",), ("attempts",), ("expire",), ("interrupt",);
    None when the run stopped there."""
    if kind == "start":
        return ("route", via or "", to) if to is not None else None
    if to is not None:
        return ("jump", via or "", to)
    if kind == "resume":
        if via in _ENDING:
            return (via,)
        if end not in (None, "completed"):  # it failed right there
            return None
        return ("next",) if via in _ONWARD else (via,) if via else None
    if end is None or end == "completed":
        return ("next",)
    return None


def build(
    statuses: Iterable[tuple[str, str | None, int]],
    entries: Iterable[tuple[str, str, str | None, str | None, str | None, int, int]],
) -> FlowStats:
    """Stats from the store's two aggregates: (status, last_step, runs); (location, kind, via, to, end,
    entries, runs for which one of these entries is the first at that location)."""
    stats = FlowStats()
    for status, last_step, count in statuses:
        stats.by_status[status] += count
        stopped = "waiting" if status == "running" else status
        stats.step(last_step or START).stopped[stopped] += count
    for where, kind, via, to, end, count, first in entries:
        step = stats.step(where)
        step.passes += count
        step.reached += int(first or 0)
        edge = edge_of(where, kind, via, to, end)
        if edge is not None:
            stats.edges[(where, *edge)] += count
            if end is None and edge[0] not in _ENDING:  # not the run's end
                step.went_on += count
    return stats


def _order(where: str) -> tuple[int, str, int]:
    if where == START:
        return (0, "", 0)
    path, _, index = where.rpartition(":")
    return (1, path, int(index) if index.isdigit() else 0)


def table(stats: FlowStats) -> list[str]:
    """The funnel as text: runs by status and completion, then a row per step in flow order."""
    rate = stats.completion_rate
    lines = [f"runs             {stats.runs}" + ("" if rate is None else f", {rate:.1%} completed")]
    lines += [f"  {status:<14} {count}" for status, count in sorted(stats.by_status.items(), key=lambda x: -x[1])]
    if not stats.steps:
        return lines
    lines.append("")
    header = f"{'step':<24} {'reached':>8} {'went on':>8} " + " ".join(f"{name:>11}" for name in STOPPED)
    lines.append(header)
    for where in sorted(stats.steps, key=_order):
        step = stats.steps[where]
        cells = " ".join(f"{step.stopped[name]:>11}" for name in STOPPED)
        lines.append(f"{where:<24} {step.reached:>8} {step.went_on:>8} {cells}")
    return lines


def as_dict(stats: FlowStats) -> dict[str, object]:
    """The stats as JSON-ready data (`stats --json`)."""
    return {
        "runs": stats.runs,
        "by_status": dict(stats.by_status),
        "completion_rate": stats.completion_rate,
        "steps": {where: {"reached": s.reached, "passes": s.passes, "went_on": s.went_on,
                          **{name: s.stopped[name] for name in STOPPED}}
                  for where, s in sorted(stats.steps.items(), key=lambda item: _order(item[0]))},
        "edges": [{"from": key[0], "edge": list(key[1:]), "count": count}
                  for key, count in sorted(stats.edges.items())],
    }
