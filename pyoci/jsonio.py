"""JSON for the runtime's own small documents (state files, set-up messages, `state` output).

`import json` pulls in re, enum, collections and functools: about 5 ms, a third of `pyoci state`. The C
accelerator the json package itself uses (_json) does the same work without them, so the hot-path commands
(start/state/kill/delete) use it through this module. Where _json is missing, the json package is used.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - every CPython build has it
    _json = None


def _constant(name: str) -> Any:
    raise ValueError("%s is not valid JSON" % name)


class _Decoder:
    """The attributes _json.make_scanner reads (those of json.JSONDecoder)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}


def _default(obj: Any) -> Any:
    raise TypeError("%s is not JSON serializable" % type(obj).__name__)


_scan: Any = None
_encode: Any = None


def loads(data: str | bytes) -> Any:
    """Parse one JSON document; ValueError when it is not one."""
    global _scan
    text = (data.decode() if isinstance(data, (bytes, bytearray)) else data).strip(" \t\n\r")  # JSON's blanks
    if _json is None:
        import json

        return json.loads(text)
    if _scan is None:
        _scan = _json.make_scanner(_Decoder)  # type: ignore[arg-type]
    try:
        obj, end = _scan(text, 0)
    except (StopIteration, SystemError):  # SystemError: _json on some malformed input
        import json  # the json package says what is wrong

        return json.loads(text)
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    """Compact JSON (no blanks, as Go's encoder writes it: containerd and runc's users read it), or
    pretty-printed with indent spaces per level."""
    global _encode
    if _json is None:
        import json

        return json.dumps(obj, indent=indent, separators=(",", ":") if indent is None else None)
    if _encode is None:
        _encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",", False,
                                     False, True)
    if indent is None:
        return "".join(_encode(obj, 0))
    out: list[str] = []
    _pretty(obj, 0, indent, out)
    return "".join(out)


def _pretty(obj: Any, level: int, indent: int, out: list[str]) -> None:
    pad = "\n" + " " * (indent * (level + 1))
    if isinstance(obj, dict) and obj:
        sep = "{"
        for key, value in obj.items():
            out.append(sep + pad + "".join(_encode(str(key), 0)) + ": ")
            _pretty(value, level + 1, indent, out)
            sep = ","
        out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(obj, (list, tuple)) and obj:
        sep = "["
        for value in obj:
            out.append(sep + pad)
            _pretty(value, level + 1, indent, out)
            sep = ","
        out.append("\n" + " " * (indent * level) + "]")
    else:
        out.append("".join(_encode(obj, 0)))
