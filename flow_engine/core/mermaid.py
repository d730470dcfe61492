"""A flow as a Mermaid flowchart (renders on GitHub): `flow-engine graph FLOW.json`."""

from __future__ import annotations

from typing import Any

from flow_engine.core.graph import (
    Delay,
    Flow,
    WaitForReply,
)

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


def to_mermaid(flow: Flow) -> str:
    """Nodes for the entry, the intent router and every step; edges for routes, sequence and timeouts."""
    lines = ["flowchart TD", '  in(["message in"])']
    if flow.interrupt:
        lines.append(f"  interrupt([{_label('interrupt: ' + ', '.join(flow.interrupt))}]) -.->|ends the paused run| in")
    first = {name: _node(name, 0) if steps else f"end_{_node(name, 0)}" for name, steps in flow.paths.items()}
    if flow.nodes:
        lines.append("  in --> router{intent}")
        for intent, path in flow.nodes[0].routes.items():
            lines.append(f"  router -->|{intent}| {first[path]}")
        if "default" not in flow.nodes[0].routes and "path_default" in flow.paths:
            lines.append(f"  router -->|default| {first['path_default']}")
    elif "path_default" in flow.paths:
        lines.append(f"  in --> {first['path_default']}")
    for name, steps in flow.paths.items():
        if not steps:
            lines.append(f"  {first[name]}((end))")
        for index, step in enumerate(steps):
            node = _node(name, index)
            label = _label(_describe(step))
            jumps = step.jumps()
            pauses = isinstance(step, Delay | WaitForReply) or getattr(step, "may_pause", False)
            if pauses:
                lines.append(f"  {node}[/{label}/]")
            elif len(jumps) > 1 or (jumps and step.falls_through):  # a decision: branch, split
                lines.append(f"  {node}{{{label}}}")
            else:
                lines.append(f"  {node}[{label}]")
            after = _node(name, index + 1) if index + 1 < len(steps) else f"end_{node}"
            lines.extend(f"  {node} -->|{_label(via)}| {first[target]}" for via, target in jumps if target in first)
            if not pauses and not step.falls_through:
                if not jumps:  # end, or an invalid step: the run stops here
                    lines.append(f"  {node} --> end_{node}((end))")
                continue
            if index + 1 == len(steps):
                lines.append(f"  {after}((end))")
            next_label = getattr(step, "next_label", "no case holds")  # business_hours: "open"
            edge = "-->|reply|" if isinstance(step, WaitForReply) else f"-->|{next_label}|" if jumps else "-->"
            lines.append(f"  {node} {edge} {after}")
            if isinstance(step, WaitForReply):
                lines.extend(_reply_edges(flow, step, node, first[step.timeout_path] if step.timeout_path else after))
    return "\n".join(lines) + "\n"


def _reply_edges(flow: Flow, step: WaitForReply, node: str, timeout_target: str) -> list[str]:
    """The ways a reply wait ends besides a matching reply: timeout, attempts, expiry; and re-prompts."""
    lines = []
    if step.timeout_ms is not None:
        lines.append(f"  {node} -.->|timeout| {timeout_target}")
    if step.no_match_text is not None:
        lines.append(f"  {node} -.->|{_label('no match: ' + step.no_match_text)}| {node}")
    if step.max_attempts is not None:
        lines.append(f"  {node} -.->|{step.max_attempts} attempts| {timeout_target}")
    expire_ms = None if flow.expire_after_min is None else flow.expire_after_min * 60_000
    if step.timeout_ms is None or (expire_ms is not None and expire_ms < step.timeout_ms):
        minutes = f"{flow.expire_after_min:g} min" if flow.expire_after_min is not None else "default"
        lines.append(f"  {node} -.->|expires, {minutes}| expired((expired))")
    return lines
