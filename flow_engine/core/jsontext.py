"""JSON text as the engine writes and reads it, by the C encoder and scanner of the standard library
called directly.

`compact(value)` is `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, the form of every
JSON value the engine keeps in Redis or puts in an output (wait states, lane items, template content,
webhook bodies, the commit's ops); `plain(value)` is `json.dumps(value)`, the form SQLAlchemy sends
JSON columns in; `parse(text)` is `json.loads(text)`. Same text and same values; what is saved is
the JSONEncoder that json.dumps builds per call when given options, and the Python layers around
the C encoder and scanner (about 17,000 of the 39,000 instructions of encoding a webhook body, 8,000
of the 19,000 of reading a lane item): the worker does several per event. Without the C module
(another Python implementation), json.dumps and json.loads themselves are used.

One difference, on data the engine never makes: a value that contains itself raises RecursionError
instead of ValueError (the check json.dumps does for it needs a fresh dict per call).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import decoder as _decoder
from json import encoder as _encoder
from json import scanner as _scanner
from typing import Any

_reject = json.JSONEncoder().default  # TypeError naming the type, as json.dumps raises


def _c_encoder(ensure_ascii: bool, item_separator: str, key_separator: str) -> Callable[[Any], str] | None:
    make = getattr(_encoder, "c_make_encoder", None)  # None, like the others, without the C module
    strings = getattr(_encoder, "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring", None)
    if make is None or strings is None:
        return None
    try:  # a private signature: another Python may change it, then json.dumps is used instead
        encode = make(None, _reject, strings, None, key_separator, item_separator, False, False, True)
    except TypeError:
        return None

    def text(value: Any) -> str:
        return "".join(encode(value, 0))

    sample = {"a": [1, 2.5, None, True, "é\n\u2028"], "b": {}}
    expected = json.dumps(sample, ensure_ascii=ensure_ascii, separators=(item_separator, key_separator))
    try:
        return text if text(sample) == expected else None
    except Exception:  # any failure of the private path means: use the public one
        return None


def _compact_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


compact: Callable[[Any], str] = _c_encoder(False, ",", ":") or _compact_dumps
plain: Callable[[Any], str] = _c_encoder(True, ", ", ": ") or json.dumps


_make_scanner = getattr(_scanner, "c_make_scanner", None)  # None without the C module
_scan = _make_scanner(_decoder.JSONDecoder()) if _make_scanner is not None else None


def parse(text: str | bytes) -> Any:
    """`json.loads(text)`: the C scanner on the whole text; anything else (whitespace around the
    value, bytes, no C scanner) and every error go through json.loads itself."""
    if _scan is None or type(text) is not str:
        return json.loads(text)
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # no value at the start: json.loads says why, or skips the whitespace
        return json.loads(text)
    return value if end == len(text) else json.loads(text)
