"""Frozen dataclasses made quickly: `quick_init` gives a `@dataclass(frozen=True)` class an __init__
that stores its fields straight into the new instance's __dict__.

The __init__ dataclasses generates for a frozen class sets each field with `object.__setattr__(self,
name, value)`, a call through a slot wrapper: about 1,800 instructions a field, 25,000 to make an
Outcome (13 fields), and the worker makes several such records per event (the lane item and its
message, outputs, the run record, the outcome). Writing to __dict__ is what object.__setattr__ ends
up doing for a plain field; the class stays as frozen as before (its __setattr__ still refuses), and
its signature, defaults, default factories, equality and hash are the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

_C = TypeVar("_C", bound=type)


def quick_init(cls: _C) -> _C:
    """Replace the generated __init__ of the frozen dataclass `cls` (see the module's docstring)."""
    params = dataclasses.fields(cls)
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: quick_init is for frozen dataclasses")
    if hasattr(cls, "__post_init__") or any(not f.init or f.kw_only for f in params):
        raise TypeError(f"{cls.__name__}: quick_init does not handle __post_init__, init=False or kw_only fields")
    for f in params:  # a descriptor of that name would be bypassed by writing to __dict__
        if hasattr(getattr(cls, f.name, None), "__set__"):
            raise TypeError(f"{cls.__name__}.{f.name}: a data descriptor of the class has the field's name")
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    signature, body = [], []
    for f in params:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING:\n        {f.name} = _factory_{f.name}()")
        else:
            signature.append(f.name)
        body.append(f"    own[{f.name!r}] = {f.name}")
    source = f"def __init__(self, {', '.join(signature)}):\n    own = self.__dict__\n" + "\n".join(body) + "\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
