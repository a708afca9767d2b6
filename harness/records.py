"""Typed records that turn into plain JSON and back: :class:`JsonRecord` (a dataclass mixin)."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, List, Tuple


class JsonRecord:
    """Mixin: ``to_json`` (plain dict, nested records too) and ``from_json`` (the inverse).

    Fields listed in ``_OMIT_NONE`` are left out of the JSON when None (sections that the
    version-1 layout only had when they were computed).
    """

    _OMIT_NONE: Tuple[str, ...] = ()

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is None and f.name in self._OMIT_NONE:
                continue
            out[f.name] = _to_json(v)
        return out

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kw[f.name] = _from_json(hints[f.name], data[f.name])
        return cls(**kw)


def _to_json(v: Any) -> Any:
    if isinstance(v, JsonRecord):
        return v.to_json()
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    return v


def _from_json(tp: Any, v: Any) -> Any:
    if v is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], v) if len(inner) == 1 else v
    if origin in (list, List):
        return [_from_json(args[0], x) for x in v] if args else list(v)
    if origin in (dict, Dict):
        return {k: _from_json(args[1], x) for k, x in v.items()} if args else dict(v)
    if isinstance(tp, type) and issubclass(tp, JsonRecord):
        return tp.from_json(v)
    return v
