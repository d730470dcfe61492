"""`{"type": "wait_for_reply"}`: pause until the contact replies (matching `pattern`) or the timeout;
`no_match_text`, `max_attempts` (SPEC §5.1) and `save_as` (SPEC §5.2)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flow_engine.core.patterns import PatternError, compile_pattern
from flow_engine.core.steps.base import ParseContext, duration_ms

TIMEOUT_FIELDS = ("seconds", "timeout_seconds")


@dataclass(frozen=True)
class WaitForReply:
    pattern: str | None
    timeout_ms: int | None
    timeout_path: str | None
    matcher: Any = field(default=None, compare=False, repr=False)
    no_match_text: str | None = None  # sent for each non-matching reply that does not end the wait
    max_attempts: int | None = None  # the wait ends as if timed out at this many non-matching replies
    save_as: str | None = None  # the attribute the resuming reply is saved as (SPEC §5.2)
    falls_through = False  # it pauses

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

    def run(self, execution: Any, path: str, index: int) -> Any:
        return execution.pause(path, index, "reply", self.timeout_ms, self)

    def describe(self) -> str:
        pattern = f" /{self.pattern}/" if self.pattern else ""
        timeout = f", {self.timeout_ms / 1000:g} s" if self.timeout_ms is not None else ""
        return f"wait for reply{pattern}{timeout}"

    def jumps(self) -> tuple[tuple[str, str], ...]:
        return ()  # the timeout path is taken on a later event: not a jump of this one


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> WaitForReply:
    pattern = raw.get("pattern")
    matcher = None
    if pattern is not None:
        if not isinstance(pattern, str):
            context.problem(f"{where}.pattern", "must be a string")
            pattern = None
        else:
            try:
                matcher = compile_pattern(pattern)
            except PatternError as exc:
                context.problem(f"{where}.pattern", f"invalid regex {json.dumps(pattern)}: {exc}")
    timeout_ms = duration_ms(raw, where, TIMEOUT_FIELDS, context)
    timeout_path = raw.get("timeout_path")
    if timeout_path is not None:
        if not isinstance(timeout_path, str) or timeout_path not in context.path_names:
            context.problem(f"{where}.timeout_path", f"path {json.dumps(timeout_path)} does not exist")
            timeout_path = None
        elif timeout_ms is None and not any(n in raw for n in TIMEOUT_FIELDS) and "max_attempts" not in raw:
            context.problem(f"{where}.timeout_path", "set without a timeout, so it can never be taken")
    no_match_text = raw.get("no_match_text")
    if no_match_text is not None and not isinstance(no_match_text, str):
        context.problem(f"{where}.no_match_text", "must be a string")
        no_match_text = None
    max_attempts = raw.get("max_attempts")
    if max_attempts is not None and (
        not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= 1000
    ):
        context.problem(f"{where}.max_attempts", f"must be an integer from 1 to 1000, got {json.dumps(max_attempts)}")
        max_attempts = None
    save_as = raw.get("save_as")
    if save_as is not None and (not isinstance(save_as, str) or not save_as.strip()):
        context.problem(f"{where}.save_as", f"must be a non-empty key, got {json.dumps(save_as)}")
        save_as = None
    return WaitForReply(pattern, timeout_ms, timeout_path, matcher, no_match_text, max_attempts, save_as)
