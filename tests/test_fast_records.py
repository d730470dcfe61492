"""The hot path's shortcuts past the standard library give what the standard library gives:
core/jsontext.py (JSON text by the C encoder and scanner) and core/frozen.py (quick_init)."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from flow_engine.core import jsontext
from flow_engine.core.frozen import quick_init
from flow_engine.core.outcome import Contact, Outcome, RunRecord

TEXTS = ["", "a", "é", 'x"y', "\\", "\n", "\x1f", "\u2028", "😀", "\ud800", "</script>", "ok 👍"]


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rnd.choice([None, True, False])
    if kind == 1:
        return rnd.randint(-(10**20), 10**20)
    if kind == 2:
        return rnd.choice([0.1, -2.5e300, float("nan"), float("inf"), 1e-7, 3.0, -0.0])
    if kind in (3, 4, 5):
        return "".join(rnd.choice(TEXTS) for _ in range(rnd.randrange(4)))
    if kind == 6:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if kind == 7:
        return tuple(_value(rnd, depth + 1) for _ in range(rnd.randrange(3)))
    return {rnd.choice(["a", "é", 1, 2.5, None, True, 'k"']): _value(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def test_json_text_is_what_json_dumps_and_loads_make() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        value = _value(rnd)
        assert jsontext.compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        assert jsontext.plain(value) == json.dumps(value)
        text = json.dumps(value, ensure_ascii=rnd.random() < 0.5)
        assert repr(jsontext.parse(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["[1,2]", " [1] ", "\ufeff[1]", "[1,", "", "nul", '{"a":1}x', "1e400", "NaN"])
def test_json_parse_fails_and_skips_whitespace_as_json_loads_does(text: str) -> None:
    def outcome(parse: Any) -> Any:
        try:
            return repr(parse(text))
        except ValueError as exc:
            return type(exc), str(exc)

    assert outcome(jsontext.parse) == outcome(json.loads)


def test_json_text_refuses_what_json_dumps_refuses() -> None:
    for value in [object(), {"a": {1, 2}}, {(1,): 2}, b"x"]:
        with pytest.raises(TypeError) as ours:
            jsontext.compact(value)
        with pytest.raises(TypeError) as theirs:
            json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        assert str(ours.value) == str(theirs.value)


def test_quick_init_keeps_the_dataclass_signature_defaults_and_frozenness() -> None:
    outcome = Outcome(event_key="k")
    assert (outcome.effects, outcome.hold, outcome.run) == ((), False, None)
    assert dataclasses.replace(outcome, hold=True) == Outcome("k", hold=True)
    assert Contact("p").attributes == {} and Contact("p").attributes is not Contact("q").attributes
    assert RunRecord("r", "f", 1, "completed", "main:0", {}) == RunRecord("r", "f", 1, "completed", "main:0", {}, (), 0)
    assert hash(Outcome("k", ignored="x")) == hash(Outcome(event_key="k", ignored="x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.hold = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'event_key'"):
        Outcome()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Outcome(event_key="k", nope=1)  # type: ignore[call-arg]


def test_quick_init_refuses_what_it_does_not_handle() -> None:
    @dataclasses.dataclass
    class Plain:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Later:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (Plain, Later):
        with pytest.raises(TypeError):
            quick_init(cls)
