"""Minimal logger honouring runc's --log / --log-format / --debug (containerd parses the json form).

The standard logging module is not imported: every millisecond of start-up is paid per container.
"""
from __future__ import annotations

import os
import sys
import time

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "fatal": 50}
_state: dict[str, object] = {"path": None, "json": False, "min": 20, "fd": None}


def configure(path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
    """Set the destination once, from the global flags."""
    _state.update(path=path or None, json=(fmt == "json"), min=10 if debug else 20, fd=None)


def timestamp() -> str:
    """RFC 3339 with nanoseconds, UTC, as runc writes it (logs, state's created)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%09dZ" % (ns % 10**9)


def _line(level: str, msg: str) -> str:
    if _state["json"]:
        from pyoci import jsonio

        return jsonio.dumps({"level": level, "msg": msg, "time": timestamp()}) + "\n"
    return 'time="%s" level=%s msg="%s"\n' % (timestamp(), level, msg.replace('"', '\\"'))


def log(level: str, msg: str) -> None:
    """Write one record; to --log when given, else stderr. Never raises."""
    if _LEVELS[level] < _state["min"]:  # type: ignore[operator]
        return
    data = _line(level, msg).encode(errors="replace")
    try:
        if _state["path"]:
            fd = os.open(str(_state["path"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        else:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
    except OSError:
        pass


def debug(msg: str) -> None:
    log("debug", msg)


def info(msg: str) -> None:
    log("info", msg)


def warning(msg: str) -> None:
    log("warning", msg)


def error(msg: str) -> None:
    log("error", msg)
