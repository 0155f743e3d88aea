"""Config mutators shared by the validation and schema tests."""
from __future__ import annotations

from typing import Any, Callable


def _keys(path: str) -> list[Any]:
    return [int(k) if k.isdigit() else k for k in path.split(".")]


def set_path(path: str, value: Any) -> Callable[[dict], None]:
    """Mutator that sets a dotted path (creating objects on the way); ints index lists."""

    def mutate(cfg: dict) -> None:
        keys = _keys(path)
        obj: Any = cfg
        for k in keys[:-1]:
            if isinstance(k, str) and k not in obj:
                obj[k] = {}
            obj = obj[k]
        obj[keys[-1]] = value

    return mutate


def del_path(path: str) -> Callable[[dict], None]:
    """Mutator that deletes a dotted path."""

    def mutate(cfg: dict) -> None:
        keys = _keys(path)
        obj: Any = cfg
        for k in keys[:-1]:
            obj = obj[k]
        del obj[keys[-1]]

    return mutate
