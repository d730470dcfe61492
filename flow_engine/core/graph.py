"""The flow language (SPEC §5): a graph parsed into immutable, typed steps plus located problems.

Parsing never raises on a bad graph: every problem is collected with its location, so
`flow-engine validate` can print them all and the runtime can refuse a broken flow with all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.graph_strings import string_problems
from flow_engine.core.intents import Keywords, compile_keywords, normalize_word
from flow_engine.core.steps import STEP_TYPES
from flow_engine.core.steps.base import Invalid as Invalid
from flow_engine.core.steps.base import is_number
from flow_engine.core.steps.branch import Branch as Branch
from flow_engine.core.steps.business_hours import BusinessHours as BusinessHours
from flow_engine.core.steps.delay import Delay as Delay
from flow_engine.core.steps.end import End as End
from flow_engine.core.steps.goto import Goto as Goto
from flow_engine.core.steps.handoff import Handoff as Handoff
from flow_engine.core.steps.send_media import SendMedia as SendMedia
from flow_engine.core.steps.send_template import SendTemplate as SendTemplate
from flow_engine.core.steps.send_text import SendText as SendText
from flow_engine.core.steps.set_attribute import SetAttribute as SetAttribute
from flow_engine.core.steps.split import Split as Split
from flow_engine.core.steps.tag import Tag as Tag
from flow_engine.core.steps.wait_for_reply import WaitForReply as WaitForReply
from flow_engine.core.steps.webhook import Webhook as Webhook

MAX_GRAPH_DEPTH = 64  # deeper JSON than this is hostile, not a flow
MAX_GRAPH_CHARS = 1_000_000  # as JSON; thousands of steps fit
MAX_EXPIRE_MIN = 366 * 24 * 60  # a year, as the longest pause

# Every step type lives in its own module of core/steps (parse + run + describe + jumps).
Step = SendText | SendTemplate | SendMedia | Webhook | SetAttribute | Delay | WaitForReply | Invalid | Branch | Goto \
    | End | Split | Handoff | BusinessHours | Tag
Jump = Branch | Goto | Split  # steps that may continue elsewhere than the next step


@dataclass(frozen=True)
class IntentNode:
    id: str
    routes: Mapping[str, str]  # intent -> path name, "default" included
    keywords: Keywords  # custom keywords, normalized, in declaration order


@dataclass(frozen=True)
class Flow:
    nodes: tuple[IntentNode, ...]  # the intent nodes, in graph order: the first one routes
    paths: Mapping[str, tuple[Step, ...]]
    problems: tuple[str, ...]
    id: str = ""
    version: int = 0
    name: str = ""
    warnings: tuple[str, ...] = ()  # parts ignored at run time (nodes of other types)
    interrupt: tuple[str, ...] | None = None  # normalized interrupt words; None: the engine's default
    expire_after_min: float | None = None  # None: the engine's default

    @property
    def valid(self) -> bool:
        return not self.problems


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative depth check, so a 10,000-level graph cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


class _Parser:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.path_names: set[str] = set()

    def problem(self, where: str, what: str) -> str:
        line = f"{where}: {what}"
        self.problems.append(line)
        return line

    def step(self, raw: Any, where: str, path_names: set[str]) -> Step:
        count = len(self.problems)
        step = self._step(raw, where, path_names)
        if len(self.problems) > count and not isinstance(step, Invalid):
            return Invalid(self.problems[count])
        return step

    def _step(self, raw: Any, where: str, path_names: set[str]) -> Step:
        if not isinstance(raw, dict):
            return Invalid(self.problem(where, "a step must be an object"))
        kind = raw.get("type")
        if isinstance(kind, str) and kind in STEP_TYPES:
            step: Step | None = STEP_TYPES[kind](raw, where, self)
            return Invalid(self.problems[-1]) if step is None else step
        if kind is None:
            return Invalid(self.problem(where, 'missing step "type"'))
        return Invalid(self.problem(where, f"unknown step type {json.dumps(kind)}"))

    def node(self, raw: Any, where: str, path_names: set[str]) -> IntentNode | None:
        if not isinstance(raw, dict):
            self.problem(where, "a node must be an object")
            return None
        kind = raw.get("type")
        if kind == "trigger":  # the builder's entry node: messages in are the only trigger there is
            if raw.get("on", "message_in") != "message_in":
                self.warnings.append(f"{where}.on: trigger {json.dumps(raw.get('on'))} is not supported, ignored")
            return None
        if kind != "intent":
            self.warnings.append(f"{where}.type: node type {json.dumps(kind)} is not supported, ignored")
            return None
        routes: dict[str, str] = {}
        mapping = raw.get("map", {})
        if not isinstance(mapping, dict):
            self.problem(f"{where}.map", "must be an object of intent -> path")
            mapping = {}
        for intent, path in mapping.items():
            if not isinstance(path, str) or path not in path_names:
                self.problem(f"{where}.map.{intent}", f"path {json.dumps(path)} does not exist")
            else:
                routes[intent] = path
        keywords: list[tuple[str, tuple[str, ...]]] = []
        custom = raw.get("keywords", {})
        if not isinstance(custom, dict):
            self.problem(f"{where}.keywords", "must be an object of intent -> [words]")
            custom = {}
        for intent, words in custom.items():
            if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
                self.problem(f"{where}.keywords.{intent}", "must be a list of non-empty strings")
                continue
            keywords.append((intent, tuple(words)))
        node_id = raw.get("id")
        return IntentNode(str(node_id) if node_id is not None else where, routes, compile_keywords(keywords))


    def interrupt_words(self, graph: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The graph's top-level "interrupt" words, normalized as messages are compared."""
        if "interrupt" not in graph:
            return None
        words = graph["interrupt"]
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            self.problem("interrupt", "must be a list of non-empty strings")
            return None
        return tuple(normalize_word(word) for word in words)

    def expire_after_min(self, graph: Mapping[str, Any]) -> float | None:
        if "expire_after_minutes" not in graph:
            return None
        value = graph["expire_after_minutes"]
        if not is_number(value) or not 0 < value <= MAX_EXPIRE_MIN:
            self.problem("expire_after_minutes", f"must be a number of minutes above 0 and at most {MAX_EXPIRE_MIN}"
                         f" (a year), got {json.dumps(value)}")
            return None
        return float(value)


def parse_flow(graph: Any, *, flow_id: str = "", version: int = 0) -> Flow:
    """Parse a graph (already decoded JSON) into a Flow carrying every problem found."""
    parser = _Parser()
    if not isinstance(graph, dict):
        parser.problem("graph", "must be a JSON object with \"nodes\" and \"paths\"")
        return Flow((), {}, tuple(parser.problems), flow_id, version)
    if _depth_exceeds(graph, MAX_GRAPH_DEPTH):
        parser.problem("graph", f"nested deeper than the limit of {MAX_GRAPH_DEPTH} levels")
        return Flow((), {}, tuple(parser.problems), flow_id, version)
    if len(json.dumps(graph, separators=(",", ":"))) > MAX_GRAPH_CHARS:
        parser.problem("graph", f"larger than the limit of {MAX_GRAPH_CHARS} characters of JSON")
        return Flow((), {}, tuple(parser.problems), flow_id, version)
    if unstorable := string_problems(graph):
        return Flow((), {}, tuple(unstorable), flow_id, version)
    raw_paths = graph.get("paths", {})
    if not isinstance(raw_paths, dict):
        parser.problem("paths", "must be an object of name -> [steps]")
        raw_paths = {}
    path_names = {name for name, steps in raw_paths.items() if isinstance(steps, list)}
    parser.path_names = path_names
    raw_nodes = graph.get("nodes", [])
    if not isinstance(raw_nodes, list):
        parser.problem("nodes", "must be a list")
        raw_nodes = []
    nodes = tuple(
        node
        for index, raw in enumerate(raw_nodes)
        if (node := parser.node(raw, f"nodes[{index}]", path_names)) is not None
    )
    paths: dict[str, tuple[Step, ...]] = {}
    for name, raw_steps in raw_paths.items():
        if not isinstance(raw_steps, list):
            parser.problem(f"paths.{name}", "must be a list of steps")
            continue
        paths[name] = tuple(
            parser.step(raw, f"paths.{name}[{index}]", path_names) for index, raw in enumerate(raw_steps)
        )
    parser.problems.extend(jump_loops(paths))
    interrupt = parser.interrupt_words(graph)
    expire_after_min = parser.expire_after_min(graph)
    name = graph.get("name")
    return Flow(nodes, paths, tuple(parser.problems), flow_id, version, name if isinstance(name, str) else "",
                tuple(parser.warnings), interrupt, expire_after_min)


def _jumps_before_pause(steps: tuple[Step, ...]) -> list[tuple[int, Step, str]]:
    """The jumps a run entering `steps` at its first step may take before it pauses or ends:
    (index, step, target path). Only a step that `falls_through` lets the run reach the next one
    within the same event (a pause, an end, a goto do not)."""
    found: list[tuple[int, Step, str]] = []
    for index, step in enumerate(steps):
        found.extend((index, step, target) for _, target in step.jumps())
        if not step.falls_through:
            break
    return found


def jump_loops(paths: Mapping[str, tuple[Step, ...]]) -> list[str]:
    """A problem for each jump on a cycle of jumps that passes no pausing step (SPEC §5.2).

    Jumps always land on a path's first step, so such a cycle is a cycle of the graph "path P may
    jump to path Q without pausing"; a jump is on one when P and Q share a strongly connected
    component (Kosaraju, iterative: a long chain of paths cannot overflow the stack)."""
    edges = {name: _jumps_before_pause(steps) for name, steps in paths.items()}
    successors = {name: sorted({target for _, _, target in jumps if target in paths}) for name, jumps in edges.items()}
    order: list[str] = []
    seen: set[str] = set()
    for root in paths:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(successors[root]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(successors[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    predecessors: dict[str, list[str]] = {name: [] for name in paths}
    for name, targets in successors.items():
        for target in targets:
            predecessors[target].append(name)
    component: dict[str, int] = {}
    for root in reversed(order):
        if root in component:
            continue
        component[root] = len(component)
        label, pending = component[root], [root]
        while pending:
            for parent in predecessors[pending.pop()]:
                if parent not in component:
                    component[parent] = label
                    pending.append(parent)
    problems = []
    for name, jumps in edges.items():
        reported: set[tuple[int, str]] = set()
        for index, step, target in jumps:
            if target in component and component[target] == component[name] and (index, target) not in reported:
                reported.add((index, target))
                what = step.loop_problem(target) if isinstance(step, Jump) else \
                    f"jump to {json.dumps(target)} loops without waiting for the contact"
                problems.append(f"paths.{name}[{index}]: {what}")
    return problems


def validate(graph: Any) -> list[str]:
    """Every problem of a graph, with its location; empty when the graph is valid."""
    return list(parse_flow(graph).problems)
