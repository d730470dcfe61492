"""A flow as a Mermaid flowchart (renders on GitHub): `flow-engine graph FLOW.json`; with stats
(`graph --stats`, core/stats.py) every step shows how many runs reached it and stopped there, and
every edge how many times it was taken."""

from __future__ import annotations

from typing import Any

from flow_engine.core.graph import (
    Delay,
    Flow,
    WaitForReply,
)
from flow_engine.core.stats import STOPPED, FlowStats

MAX_LABEL = 48


def _label(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return '"' + text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;") + '"'


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s"


def _describe(step: Any) -> str:
    return str(step.describe())  # every step type describes itself (core/steps/)


def _node(path: str, index: int) -> str:
    return f"p_{''.join(ch if ch.isalnum() else '_' for ch in path)}_{index}"


class _Counts:
    """The counts drawn on a flowchart: none without stats."""

    def __init__(self, stats: FlowStats | None) -> None:
        self.stats = stats

    def node(self, label: str, where: str) -> str:
        """A quoted label with the step's runs: `"send_text: Hola<br/>120 runs, 3 failed"`."""
        if self.stats is None:
            return label
        step = self.stats.steps.get(where)
        counts = [f"{step.reached if step else 0} runs"]
        if step is not None:
            counts += [f"{step.stopped[name]} {name}" for name in STOPPED if step.stopped[name]]
        return label[:-1] + "<br/>" + ", ".join(counts) + '"'

    def edge(self, label: str | None, count: int) -> str:
        """An edge's `|label|` with the times it was taken (`|"reply · 42"|`, `|42|`)."""
        if self.stats is None:
            return "" if label is None else f"|{label}|"
        if label is None:
            return f"|{count}|"
        quoted = label if label.startswith('"') else f'"{label}"'
        return f"|{quoted[:-1]} · {count}\"|"

    def taken(self, where: str, *edge: str) -> int:
        return 0 if self.stats is None else self.stats.edges[(where, *edge)]

    def routed(self, intent: str, path: str) -> int:
        return self.taken("start", "route", intent, path)


def to_mermaid(flow: Flow, stats: FlowStats | None = None) -> str:
    """Nodes for the entry, the intent router and every step; edges for routes, sequence and timeouts.
    With `stats`, the runs of each step and the times each edge was taken."""
    counts = _Counts(stats)
    entered = f'(["message in<br/>{stats.runs} runs"])' if stats is not None else '(["message in"])'
    lines = ["flowchart TD", f"  in{entered}"]
    if flow.interrupt:
        interrupted = sum(n for key, n in stats.edges.items() if key[1] == "interrupt") if stats else 0
        lines.append(f"  interrupt([{_label('interrupt: ' + ', '.join(flow.interrupt))}]) -.->"
                     f"{counts.edge('ends the paused run', interrupted)} in")
    first = {name: _node(name, 0) if steps else f"end_{_node(name, 0)}" for name, steps in flow.paths.items()}
    routes = _routes(flow, stats)
    if flow.nodes:
        lines.append(f"  in -->{counts.edge(None, sum(routes.values()))} router{{intent}}")
        for intent, path in flow.nodes[0].routes.items():
            lines.append(f"  router -->{counts.edge(intent, routes.get((intent, path), 0))} {first[path]}")
        if "default" not in flow.nodes[0].routes and "path_default" in flow.paths:
            taken = routes.get(("default", "path_default"), 0)
            lines.append(f"  router -->{counts.edge('default', taken)} {first['path_default']}")
    elif "path_default" in flow.paths:
        lines.append(f"  in -->{counts.edge(None, sum(routes.values()))} {first['path_default']}")
    for name, steps in flow.paths.items():
        if not steps:
            lines.append(f"  {first[name]}((end))")
        for index, step in enumerate(steps):
            node, where = _node(name, index), f"{name}:{index}"
            label = counts.node(_label(_describe(step)), where)
            jumps = step.jumps()
            pauses = isinstance(step, Delay | WaitForReply) or getattr(step, "may_pause", False)
            if pauses:
                lines.append(f"  {node}[/{label}/]")
            elif len(jumps) > 1 or (jumps and step.falls_through):  # a decision: branch, split
                lines.append(f"  {node}{{{label}}}")
            else:
                lines.append(f"  {node}[{label}]")
            after = _node(name, index + 1) if index + 1 < len(steps) else f"end_{node}"
            lines.extend(f"  {node} -->{counts.edge(_label(via), _jumped(counts, where, via, target))} {first[target]}"
                         for via, target in jumps if target in first)
            onward = counts.taken(where, "next")
            if not pauses and not step.falls_through:
                if not jumps:  # end, or an invalid step: the run stops here
                    lines.append(f"  {node} -->{counts.edge(None, onward) if onward else ''} end_{node}((end))")
                continue
            if index + 1 == len(steps):
                lines.append(f"  {after}((end))")
            next_label = getattr(step, "next_label", "no case holds")  # business_hours: "open"
            edge = "reply" if isinstance(step, WaitForReply) else next_label if jumps else None
            lines.append(f"  {node} -->{counts.edge(edge, onward)} {after}")
            if isinstance(step, WaitForReply):
                lines.extend(_reply_edges(flow, step, node, first[step.timeout_path] if step.timeout_path else after,
                                          counts, where))
    return "\n".join(lines) + "\n"


def _routes(flow: Flow, stats: FlowStats | None) -> dict[tuple[str, str], int]:
    """Runs entering each path, by the router's edge that took them: (intent, path) when the intent
    has its own edge, else ("default", path)."""
    if stats is None:
        return {}
    mapped = flow.nodes[0].routes if flow.nodes else {}
    routes: dict[tuple[str, str], int] = {}
    for key, count in stats.edges.items():
        if key[0] == "start" and key[1] == "route":
            intent, path = key[2], key[3]
            edge = (intent, path) if mapped.get(intent) == path else ("default", path)
            routes[edge] = routes.get(edge, 0) + count
    return routes


def _jumped(counts: _Counts, where: str, via: str, target: str) -> int:
    """Times a branch case (by its test), a goto or a split's variant (by its path) was taken."""
    return counts.taken(where, "jump", via, target) or counts.taken(where, "jump", "variant", target)


def _reply_edges(flow: Flow, step: WaitForReply, node: str, timeout_target: str, counts: _Counts,
                 where: str) -> list[str]:
    """The ways a reply wait ends besides a matching reply: timeout, attempts, expiry; and re-prompts."""
    lines = []
    if step.timeout_ms is not None:
        lines.append(f"  {node} -.->{counts.edge('timeout', counts.taken(where, 'timeout'))} {timeout_target}")
    if step.no_match_text is not None:
        lines.append(f"  {node} -.->|{_label('no match: ' + step.no_match_text)}| {node}")
    if step.max_attempts is not None:
        attempts = counts.edge(f"{step.max_attempts} attempts", counts.taken(where, "attempts"))
        lines.append(f"  {node} -.->{attempts} {timeout_target}")
    expire_ms = None if flow.expire_after_min is None else flow.expire_after_min * 60_000
    if step.timeout_ms is None or (expire_ms is not None and expire_ms < step.timeout_ms):
        minutes = f"{flow.expire_after_min:g} min" if flow.expire_after_min is not None else "default"
        expired = counts.edge(f"expires, {minutes}", counts.taken(where, "expire"))
        lines.append(f"  {node} -.->{expired} expired((expired))")
    return lines
