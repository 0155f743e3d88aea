"""A small typed record base: dataclasses would cost ~6 ms of imports, paid by every container."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Record:
    """Fields come from the class annotations, defaults from class attributes (lists/dicts are copied)."""

    _fields: tuple[str, ...] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if not name.startswith("_") and name not in fields:
                    fields.append(name)
        cls._fields = tuple(fields)

    def __init__(self, *args: Any, **kw: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError("%s takes at most %d arguments" % (type(self).__name__, len(self._fields)))
        for name, value in zip(self._fields, args):
            if name in kw:
                raise TypeError("%s: %s given twice" % (type(self).__name__, name))
            kw[name] = value
        for name in self._fields:
            if name in kw:
                value = kw.pop(name)
            else:
                try:
                    value = getattr(type(self), name)
                except AttributeError:
                    raise TypeError("%s: missing %s" % (type(self).__name__, name)) from None
                if isinstance(value, (list, dict)):
                    value = value.copy()
            setattr(self, name, value)
        if kw:
            raise TypeError("%s: unknown field(s) %s" % (type(self).__name__, ", ".join(kw)))

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._fields))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self._fields)

    def as_dict(self) -> dict[str, Any]:
        return {n: _plain(getattr(self, n)) for n in self._fields}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
