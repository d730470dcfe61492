"""The tests of `branch` (SPEC §5.2), compiled once at parse time into predicates on an Operand.

Text tests ignore case, accents and surrounding spaces; words are runs of letters and digits; a
number is a word of digits with an optional sign and decimal part (`3`, `-2`, `3.5`, `3,5`), so the
digits inside a word (`mesa4`) are not a number.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from flow_engine.core.intents import classify
from flow_engine.core.patterns import PatternError, compile_pattern

_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"(?<![^\W_])[-+]?\d+(?:[.,]\d+)?(?![^\W_])")
_EMAIL = re.compile(r"[^\W][\w.+\-]*@[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2,}")
_PHONE = re.compile(r"\+?\d(?:[ .\-]?\d)+")


def plain(text: str) -> str:
    """Lower case, accents stripped, trimmed, inner spaces single."""
    if text.isascii():  # the common case, and the same result: no accents to strip
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


def words_of(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(plain(text)))


class Operand:
    """The text a branch tests, with its plain form, words and numbers worked out once, on demand."""

    __slots__ = ("_numbers", "_plain", "_words", "keywords", "text")

    def __init__(self, text: str, keywords: Any = ()) -> None:
        self.text, self.keywords = text, keywords
        self._plain: str | None = None
        self._words: tuple[str, ...] | None = None
        self._numbers: tuple[float, ...] | None = None

    @property
    def plain(self) -> str:
        if self._plain is None:
            self._plain = plain(self.text)
        return self._plain

    @property
    def words(self) -> tuple[str, ...]:
        if self._words is None:
            self._words = tuple(_WORD.findall(self.plain))
        return self._words

    @property
    def numbers(self) -> tuple[float, ...]:
        if self._numbers is None:
            self._numbers = tuple(float(n.replace(",", ".")) for n in _NUMBER.findall(self.text))
        return self._numbers


Predicate = Callable[[Operand], bool]


class ArgumentError(ValueError):
    """The argument of a test has the wrong type; the message says what it should be."""


def _true(arg: Any) -> None:
    if arg is not True:
        raise ArgumentError(f"must be true, got {json.dumps(arg)}")


def _number(arg: Any) -> float:
    if not isinstance(arg, int | float) or isinstance(arg, bool) or not math.isfinite(arg):
        raise ArgumentError(f"must be a number, got {json.dumps(arg)}")
    return float(arg)


def _text(arg: Any) -> str:
    if not isinstance(arg, str):
        raise ArgumentError(f"must be a text, got {json.dumps(arg, ensure_ascii=False)}")
    return arg


def _words(arg: Any) -> tuple[str, ...]:
    if isinstance(arg, str):
        words = words_of(arg)
    elif isinstance(arg, list) and all(isinstance(item, str) for item in arg):
        words = tuple(word for item in arg for word in words_of(item))
    else:
        raise ArgumentError(f"must be a list of words or a text, got {json.dumps(arg, ensure_ascii=False)}")
    if not words:
        raise ArgumentError("must hold at least one word")
    return words


def _has_text(arg: Any) -> Predicate:
    _true(arg)
    return lambda op: bool(op.text.strip())


def _equals(arg: Any) -> Predicate:
    expected = plain(_text(arg))
    return lambda op: op.plain == expected


def _has_any_word(arg: Any) -> Predicate:
    wanted = frozenset(_words(arg))
    return lambda op: not wanted.isdisjoint(op.words)


def _has_all_words(arg: Any) -> Predicate:
    wanted = frozenset(_words(arg))
    return lambda op: wanted.issubset(op.words)


def _has_phrase(arg: Any) -> Predicate:
    phrase = _words(_text(arg))
    size = len(phrase)

    def holds(op: Operand) -> bool:
        words = op.words
        return any(words[i : i + size] == phrase for i in range(len(words) - size + 1))

    return holds


def _has_beginning(arg: Any) -> Predicate:
    phrase = _words(_text(arg))
    return lambda op: op.words[: len(phrase)] == phrase


def _matches(arg: Any) -> Predicate:
    pattern = _text(arg)
    try:
        matcher = compile_pattern(pattern)
    except PatternError as exc:
        raise ArgumentError(f"invalid regex {json.dumps(pattern, ensure_ascii=False)}: {exc}") from None

    def holds(op: Operand) -> bool:
        try:
            return matcher.search(op.text) is not None
        except UnicodeEncodeError:  # lone surrogates: match what is readable
            return matcher.search(op.text.encode("utf-8", "replace").decode()) is not None

    return holds


def _has_number(arg: Any) -> Predicate:
    _true(arg)
    return lambda op: bool(op.numbers)


def _has_number_between(arg: Any) -> Predicate:
    if not isinstance(arg, list) or len(arg) != 2:
        raise ArgumentError(f"must be [min, max], got {json.dumps(arg, ensure_ascii=False)}")
    low, high = _number(arg[0]), _number(arg[1])
    if low > high:
        raise ArgumentError(f"min {low:g} is above max {high:g}")
    return lambda op: any(low <= n <= high for n in op.numbers)


def _first_number(compare: Callable[[float, float], bool]) -> Callable[[Any], Predicate]:
    def compile_(arg: Any) -> Predicate:
        bound = _number(arg)
        return lambda op: bool(op.numbers) and compare(op.numbers[0], bound)

    return compile_


def _has_email(arg: Any) -> Predicate:
    _true(arg)
    return lambda op: _EMAIL.search(op.text) is not None


def _has_phone(arg: Any) -> Predicate:
    _true(arg)

    def holds(op: Operand) -> bool:
        return any(7 <= sum(ch.isdigit() for ch in found) <= 15 for found in _PHONE.findall(op.text))

    return holds


def _has_intent(arg: Any) -> Predicate:
    intent = _text(arg)
    if not intent.strip():
        raise ArgumentError("must be an intent name")
    return lambda op: classify(op.text, op.keywords) == intent


def _is_set(arg: Any) -> Predicate:
    _true(arg)
    return lambda op: bool(op.text.strip())


def _is_empty(arg: Any) -> Predicate:
    _true(arg)
    return lambda op: not op.text.strip()


TESTS: Mapping[str, Callable[[Any], Predicate]] = {
    "has_text": _has_text,
    "equals": _equals,
    "has_any_word": _has_any_word,
    "has_all_words": _has_all_words,
    "has_phrase": _has_phrase,
    "has_beginning": _has_beginning,
    "matches": _matches,
    "has_number": _has_number,
    "has_number_between": _has_number_between,
    "has_number_lt": _first_number(lambda n, bound: n < bound),
    "has_number_lte": _first_number(lambda n, bound: n <= bound),
    "has_number_gt": _first_number(lambda n, bound: n > bound),
    "has_number_gte": _first_number(lambda n, bound: n >= bound),
    "has_number_eq": _first_number(lambda n, bound: n == bound),
    "has_email": _has_email,
    "has_phone": _has_phone,
    "has_intent": _has_intent,
    "is_set": _is_set,
    "is_empty": _is_empty,
}


def compile_test(name: str, arg: Any) -> Predicate:
    """The predicate of test `name` with `arg`; KeyError for an unknown test, ArgumentError for a bad arg."""
    return TESTS[name](arg)
