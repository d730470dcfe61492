"""The flow language (SPEC §5): a graph parsed into immutable, typed steps plus located problems.

Parsing never raises on a bad graph: every problem is collected with its location, so
`flow-engine validate` can print them all and the runtime can refuse a broken flow with all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flow_engine.core.graph_strings import string_problems
from flow_engine.core.intents import Keywords, compile_keywords, normalize_word
from flow_engine.core.patterns import PatternError, compile_pattern
from flow_engine.core.steps import STEP_TYPES
from flow_engine.core.steps.branch import Branch
from flow_engine.core.steps.end import End
from flow_engine.core.steps.goto import Goto
from flow_engine.core.steps.split import Split
from flow_engine.core.template import has_placeholders

MAX_GRAPH_DEPTH = 64  # deeper JSON than this is hostile, not a flow
MAX_GRAPH_CHARS = 1_000_000  # as JSON; thousands of steps fit
DEFAULT_LANGUAGE: Mapping[str, Any] = {"code": "es"}
MAX_DURATION_MS = 366 * 86_400_000  # a year: longer pauses are mistakes (and would overflow)
DURATION_FIELDS = ("seconds", "sec", "ms")
TIMEOUT_FIELDS = ("seconds", "timeout_seconds")
MAX_EXPIRE_MIN = 366 * 24 * 60  # as MAX_DURATION_MS
# send_media "asset": the kind follows the link's file extension; anything else is an image, as the
# platform's builder flows expect (SPEC §5.1).
ASSET_KINDS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "opus", "amr", "aac", "m4a"), "audio"),
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv"), "document"),
}


def asset_kind(link: str) -> str:
    """The media kind of an asset link, from the extension of its path (query and fragment ignored)."""
    path = link.split("#", 1)[0].split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ASSET_KINDS.get(extension, "image")


@dataclass(frozen=True)
class SendText:
    text: str


@dataclass(frozen=True)
class SendTemplate:
    name: str
    language: Any
    components: Any
    templated: bool = False  # components hold placeholders


@dataclass(frozen=True)
class SendMedia:
    media: Mapping[str, Any]  # {"kind", "link", "caption"?}
    templated: bool = False


@dataclass(frozen=True)
class Webhook:
    data: Any
    templated: bool = False


@dataclass(frozen=True)
class SetAttribute:
    key: str
    value: Any
    templated: bool = False


@dataclass(frozen=True)
class Delay:
    ms: int


@dataclass(frozen=True)
class WaitForReply:
    pattern: str | None
    timeout_ms: int | None
    timeout_path: str | None
    matcher: Any = field(default=None, compare=False, repr=False)
    no_match_text: str | None = None  # sent for each non-matching reply that does not end the wait
    max_attempts: int | None = None  # the wait ends as if timed out at this many non-matching replies
    save_as: str | None = None  # the attribute the resuming reply is saved as (SPEC §5.2)

    def _search(self, text: str) -> Any:
        try:
            return self.matcher.search(text)
        except UnicodeEncodeError:  # lone surrogates from a JSON "\ud800" escape: match what is readable
            return self.matcher.search(text.encode("utf-8", "replace").decode())

    def matches(self, text: str) -> bool:
        return self.matcher is None or self._search(text) is not None

    def capture(self, text: str) -> str:
        """What `save_as` keeps of a matching reply: the group named `value`, else the first group,
        else the whole text; trimmed."""
        found = self._search(text) if self.matcher is not None else None
        if found is not None:
            if "value" in self.matcher.groupindex and found.group("value") is not None:
                return str(found.group("value")).strip()
            if self.matcher.groups and found.group(1) is not None:
                return str(found.group(1)).strip()
        return text.strip()


@dataclass(frozen=True)
class Invalid:
    """A step that failed validation; reaching it at run time fails the run."""

    problem: str


Step = SendText | SendTemplate | SendMedia | Webhook | SetAttribute | Delay | WaitForReply | Invalid | Branch | Goto \
    | End | Split
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Parser:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.path_names: set[str] = set()

    def problem(self, where: str, what: str) -> str:
        line = f"{where}: {what}"
        self.problems.append(line)
        return line

    def duration_ms(self, raw: Mapping[str, Any], where: str, names: tuple[str, ...]) -> int | None:
        """Milliseconds from the first present alias; `ms` is exact, seconds may be fractional."""
        present = [name for name in names if name in raw]
        if not present:
            return None
        if len(present) > 1:
            self.problem(where, "give only one of " + ", ".join(f'"{n}"' for n in present))
        name = present[0]
        value = raw[name]
        if not _is_number(value) or value < 0:
            self.problem(f"{where}.{name}", f"must be a non-negative number, got {json.dumps(value)}")
            return None
        exact: float = value if name == "ms" else value * 1000
        if exact > MAX_DURATION_MS:
            self.problem(f"{where}.{name}", f"must be at most {MAX_DURATION_MS // 1000} seconds (a year)")
            return None
        return round(exact)

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
        if kind == "action":
            return self._action(raw, where)
        if kind == "set_attribute":
            key = raw.get("key")
            if not isinstance(key, str) or not key:
                return Invalid(self.problem(where, 'set_attribute requires "key" (a non-empty string)'))
            if "value" not in raw:
                return Invalid(self.problem(where, 'set_attribute requires "value"'))
            return SetAttribute(key, raw["value"], has_placeholders(raw["value"]))
        if kind in ("wait", "delay"):
            if not any(name in raw for name in DURATION_FIELDS):
                return Invalid(self.problem(where, f'{kind} requires a duration: one of "seconds", "sec", "ms"'))
            return Delay(self.duration_ms(raw, where, DURATION_FIELDS) or 0)  # a bad value is a problem
        if kind == "wait_for_reply":
            return self._wait_for_reply(raw, where, path_names)
        if isinstance(kind, str) and kind in STEP_TYPES:
            step = STEP_TYPES[kind](raw, where, self)
            return Invalid(self.problems[-1]) if step is None else step
        if kind is None:
            return Invalid(self.problem(where, 'missing step "type"'))
        return Invalid(self.problem(where, f"unknown step type {json.dumps(kind)}"))

    def _action(self, raw: Mapping[str, Any], where: str) -> Step:
        action = raw.get("action")
        if action == "send_text":
            text = raw.get("text")
            if not isinstance(text, str):
                return Invalid(self.problem(where, 'send_text requires "text" (a string)'))
            return SendText(text)
        if action == "send_template":
            name = raw.get("template")
            if not isinstance(name, str) or not name:
                return Invalid(self.problem(where, 'send_template requires "template" (a name)'))
            components = raw.get("components", [])
            if not isinstance(components, list):
                self.problem(f"{where}.components", "must be a list")
            return SendTemplate(
                name, raw.get("language", DEFAULT_LANGUAGE), components, has_placeholders(components)
            )
        if action == "send_media":
            media = raw.get("media")
            if media is None and isinstance(raw.get("asset"), str):
                media = {"kind": raw.get("kind") or asset_kind(raw["asset"]), "link": raw["asset"]}
                if isinstance(raw.get("caption"), str):
                    media["caption"] = raw["caption"]
            if not isinstance(media, dict):
                return Invalid(self.problem(where, 'send_media requires "media" {kind, link} or "asset"'))
            for name in ("kind", "link"):
                if not isinstance(media.get(name), str) or not media[name]:
                    self.problem(f"{where}.media.{name}", "required (a non-empty string)")
            if "caption" in media and not isinstance(media["caption"], str):
                self.problem(f"{where}.media.caption", "must be a string")
            return SendMedia(dict(media), has_placeholders(media))
        if action == "webhook":
            data = raw["data"] if "data" in raw else raw.get("payload", {})
            return Webhook(data, has_placeholders(data))
        if action is None:
            return Invalid(self.problem(where, 'an action step requires "action"'))
        return Invalid(self.problem(where, f"unknown action {json.dumps(action)}"))

    def _wait_for_reply(self, raw: Mapping[str, Any], where: str, path_names: set[str]) -> Step:
        pattern = raw.get("pattern")
        matcher = None
        if pattern is not None:
            if not isinstance(pattern, str):
                self.problem(f"{where}.pattern", "must be a string")
                pattern = None
            else:
                try:
                    matcher = compile_pattern(pattern)
                except PatternError as exc:
                    self.problem(f"{where}.pattern", f"invalid regex {json.dumps(pattern)}: {exc}")
        timeout_ms = self.duration_ms(raw, where, TIMEOUT_FIELDS)
        timeout_path = raw.get("timeout_path")
        if timeout_path is not None:
            if not isinstance(timeout_path, str) or timeout_path not in path_names:
                self.problem(f"{where}.timeout_path", f"path {json.dumps(timeout_path)} does not exist")
                timeout_path = None
            elif timeout_ms is None and not any(n in raw for n in TIMEOUT_FIELDS) and "max_attempts" not in raw:
                self.problem(f"{where}.timeout_path", "set without a timeout, so it can never be taken")
        no_match_text = raw.get("no_match_text")
        if no_match_text is not None and not isinstance(no_match_text, str):
            self.problem(f"{where}.no_match_text", "must be a string")
            no_match_text = None
        max_attempts = raw.get("max_attempts")
        if max_attempts is not None and (
            not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= 1000
        ):
            self.problem(f"{where}.max_attempts", f"must be an integer from 1 to 1000, got {json.dumps(max_attempts)}")
            max_attempts = None
        save_as = raw.get("save_as")
        if save_as is not None and (not isinstance(save_as, str) or not save_as.strip()):
            self.problem(f"{where}.save_as", f"must be a non-empty key, got {json.dumps(save_as)}")
            save_as = None
        return WaitForReply(pattern, timeout_ms, timeout_path, matcher, no_match_text, max_attempts, save_as)

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
        if not _is_number(value) or not 0 < value <= MAX_EXPIRE_MIN:
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


def _jumps_before_pause(steps: tuple[Step, ...]) -> list[tuple[int, Jump, str]]:
    """The jumps a run entering `steps` at its first step may take before it pauses or ends:
    (index, step, target path)."""
    found: list[tuple[int, Jump, str]] = []
    for index, step in enumerate(steps):
        if isinstance(step, Delay | WaitForReply | Invalid | End):
            break
        if isinstance(step, Branch | Goto | Split):
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
                problems.append(f"paths.{name}[{index}]: {step.loop_problem(target)}")
    return problems


def validate(graph: Any) -> list[str]:
    """Every problem of a graph, with its location; empty when the graph is valid."""
    return list(parse_flow(graph).problems)
