"""`{"type": "branch", "on": TEMPLATE, "cases": [{TEST: ARG, "path": P}, ...], "default": P?}`.

The first case whose test holds on the rendered operand enters its path at its first step; none
holds: the `default` path, or without one the next step. Tests are compiled at parse time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flow_engine.core.steps.base import ParseContext, path_field
from flow_engine.core.steps.conditions import TESTS, ArgumentError, Operand, Predicate, compile_test
from flow_engine.core.template import render

DEFAULT_OPERAND = "{{message.text}}"


@dataclass(frozen=True)
class Case:
    test: str
    arg: Any
    path: str
    holds: Predicate = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.test} {json.dumps(self.arg, ensure_ascii=False)}"


@dataclass(frozen=True)
class Branch:
    on: str
    cases: tuple[Case, ...]
    default: str | None

    @property
    def falls_through(self) -> bool:
        return self.default is None

    def choose(self, operand: Operand) -> tuple[str, str] | None:
        """(the test that holds or "default", the path to enter), or None: the next step."""
        for case in self.cases:
            if case.holds(operand):
                return case.label, case.path
        return None if self.default is None else ("default", self.default)

    def run(self, execution: Any, path: str, index: int) -> str | None:
        nodes = execution.flow.nodes
        text = execution.text if self.on == DEFAULT_OPERAND else render(self.on, execution.values())
        chosen = self.choose(Operand(text, nodes[0].keywords if nodes else ()))
        if chosen is None:
            return None
        execution.jumped(path, index, *chosen)
        return chosen[1]

    def describe(self) -> str:
        return f"branch on {self.on}"

    def jumps(self) -> tuple[tuple[str, str], ...]:
        edges = tuple((case.label, case.path) for case in self.cases)
        return edges + ((("default", self.default),) if self.default is not None else ())

    def loop_problem(self, target: str) -> str:
        return f"branch to {json.dumps(target, ensure_ascii=False)} loops without waiting for the contact"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> Branch | None:
    count = len(context.problems)
    on = raw.get("on", DEFAULT_OPERAND)
    if not isinstance(on, str):
        context.problem(f"{where}.on", "must be a text (a template)")
    raw_cases = raw.get("cases")
    if not isinstance(raw_cases, list):
        context.problem(where, 'branch requires "cases" (a list of {TEST: ARG, "path": P})')
        raw_cases = []
    cases: list[Case] = []
    for number, raw_case in enumerate(raw_cases):
        at = f"{where}.cases[{number}]"
        if not isinstance(raw_case, dict):
            context.problem(at, 'a case must be an object {TEST: ARG, "path": P}')
            continue
        path = path_field(raw_case, "path", at, context)
        tests = [key for key in raw_case if key != "path"]
        if len(tests) != 1:
            known = ", ".join(TESTS)
            context.problem(at, f"a case names exactly one test (one of {known}), got {len(tests)}")
            continue
        test = tests[0]
        if test not in TESTS:
            context.problem(f"{at}.{test}", f"unknown test {json.dumps(test, ensure_ascii=False)}")
            continue
        try:
            holds = compile_test(test, raw_case[test])
        except ArgumentError as exc:
            context.problem(f"{at}.{test}", str(exc))
            continue
        if path is not None:
            cases.append(Case(test, raw_case[test], path, holds))
    default = path_field(raw, "default", where, context) if "default" in raw else None
    if len(context.problems) > count or not isinstance(on, str):
        return None
    return Branch(on, tuple(cases), default)
