"""`pyoci events`: the container's resource usage and OOM kills as JSON lines, in runc's format
(runc/types/events.go: {"type": "stats", "id": ID, "data": {cpu, memory, pids, blkio, hugetlb}} and
{"type": "oom", "id": ID}), read from its cgroup on v1 and v2 alike.

Stats come every interval (once with --stats); an OOM kill is seen by polling the kill counter
(memory.events oom_kill on v2, memory.oom_control oom_kill on v1) a few times a second, so one that happens
between two stats lines is reported at once. It ends when the container is gone or stopped.
"""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from pyoci.errors import UsageError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX = (1 << 64) - 1
OOM_POLL = 0.1  # seconds between looks at the OOM kill counter


def parse_duration(text: str) -> float:
    """A Go duration as runc takes it ("5s", "100ms", "1m30s"), in seconds; it must be positive."""
    rest, total = text.strip(), 0.0
    if not rest:
        raise UsageError("--interval: empty duration")
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        number, unit = rest[:i], rest[i:j]
        if not number or unit not in _UNITS:
            raise UsageError("--interval %r: expected a duration like 5s, 100ms or 1m30s" % text)
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            raise UsageError("--interval %r: expected a duration like 5s, 100ms or 1m30s" % text) from None
        rest = rest[j:]
    if total <= 0:
        raise UsageError("--interval %r: must be positive" % text)
    return total


def stats(paths: dict[str, str]) -> dict[str, Any]:
    """The cgroup's counters in runc's names (types.Stats): cpu, memory, pids, blkio, hugetlb."""
    if "" in paths and len(paths) == 1:
        return _stats_v2(paths[""])
    return _stats_v1(paths)


def run(container: Any, interval: float, once: bool, out: Callable[[str], None]) -> int:
    """The events loop of `pyoci events` (see the module's docstring)."""
    from pyoci import jsonio

    def emit(kind: str, data: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {"type": kind, "id": container.id}
        if data is not None:
            event["data"] = data
        out(jsonio.dumps(event))

    paths = container._cgroup().paths
    if once:
        emit("stats", stats(paths))
        return 0
    import gc

    gc.enable()  # the CLI turns it off for its short commands; this loop lasts as long as the container
    kills = _oom_kills(paths)
    next_stats = time.monotonic()
    while True:
        if not _alive(container):
            return 0
        now = time.monotonic()
        if now >= next_stats:
            emit("stats", stats(paths))
            next_stats = now + interval
        seen = _oom_kills(paths)
        if seen > kills:
            emit("oom")
        kills = max(kills, seen)
        time.sleep(max(0.0, min(OOM_POLL, next_stats - time.monotonic())))


def _alive(container: Any) -> bool:
    from pyoci.errors import PyociError

    try:
        return container.refresh().status not in ("stopped",)
    except PyociError:  # deleted
        return False


def _oom_kills(paths: dict[str, str]) -> int:
    for name, path in paths.items():
        if name == "":
            kv = _keyed(path, "memory.events")
        elif "memory" in name.split(","):
            kv = _keyed(path, "memory.oom_control")
        else:
            continue
        if kv:
            return kv.get("oom_kill", kv.get("oom", 0))
    return 0


# ------------------------------------------------------------------------------------------------- readers
def _read(path: str, name: str) -> str | None:
    try:
        with open(os.path.join(path, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def _int(path: str, name: str) -> int:
    text = _read(path, name)
    if text is None or text == "max":  # "max": no limit, which runc reports as the largest uint64
        return 0 if text is None else _MAX
    try:
        return int(text)
    except ValueError:
        return 0


def _keyed(path: str, name: str) -> dict[str, int]:
    """A flat keyed file ("key value" lines: cpu.stat, memory.stat, memory.events)."""
    out = {}
    for line in (_read(path, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            pass
    return out


def _hugepage_sizes(path: str, suffix: str) -> list[str]:
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted({n.split(".")[1] for n in names if n.startswith("hugetlb.") and n.endswith(suffix)})


# --------------------------------------------------------------------------------------------------- v2
def _stats_v2(d: str) -> dict[str, Any]:
    cpu = _keyed(d, "cpu.stat")
    mem = _keyed(d, "memory.stat")
    events = _keyed(d, "memory.events")
    usage = _int(d, "memory.current")
    swap = _int(d, "memory.swap.current")
    io: dict[str, list[dict[str, Any]]] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in (_read(d, "io.stat") or "").splitlines():
        dev, *fields = line.split()
        major, _, minor = dev.partition(":")
        kv = dict(f.split("=", 1) for f in fields if "=" in f)
        for key, op, target in (("rbytes", "Read", "ioServiceBytesRecursive"), ("wbytes", "Write",
                                "ioServiceBytesRecursive"), ("rios", "Read", "ioServicedRecursive"),
                                ("wios", "Write", "ioServicedRecursive")):
            if key in kv:
                io[target].append({"major": int(major), "minor": int(minor), "op": op, "value": int(kv[key])})
    hugetlb = {size: {"usage": _int(d, "hugetlb.%s.current" % size), "max": _int(d, "hugetlb.%s.max" % size),
                      "failcnt": _keyed(d, "hugetlb.%s.events" % size).get("max", 0)}
               for size in _hugepage_sizes(d, ".current")}
    return {
        "cpu": {"usage": {"total": cpu.get("usage_usec", 0) * 1000, "kernel": cpu.get("system_usec", 0) * 1000,
                          "user": cpu.get("user_usec", 0) * 1000},
                "throttling": {"periods": cpu.get("nr_periods", 0), "throttled_periods": cpu.get("nr_throttled", 0),
                               "throttled_time": cpu.get("throttled_usec", 0) * 1000}},
        "memory": {"cache": mem.get("file", 0),
                   "usage": {"limit": _int(d, "memory.max"), "usage": usage, "max": _int(d, "memory.peak"),
                             "failcnt": events.get("max", 0)},
                   # runc's v2 swap entry is memory plus swap, as v1's memsw counters are
                   "swap": {"limit": _int(d, "memory.swap.max"), "usage": usage + swap, "failcnt": 0},
                   "raw": mem},
        "pids": {"current": _int(d, "pids.current"), "limit": _int(d, "pids.max")},
        "blkio": {k: v for k, v in io.items() if v},
        "hugetlb": hugetlb,
    }


# --------------------------------------------------------------------------------------------------- v1
def _stats_v1(paths: dict[str, str]) -> dict[str, Any]:
    def of(controller: str) -> str | None:
        return next((p for n, p in paths.items() if controller in n.split(",")), None)

    out: dict[str, Any] = {"cpu": {"usage": {}, "throttling": {}}, "memory": {}, "pids": {}, "blkio": {},
                           "hugetlb": {}}
    acct = of("cpuacct")
    if acct:
        ticks = _keyed(acct, "cpuacct.stat")
        hz = os.sysconf("SC_CLK_TCK") or 100
        percpu = [int(x) for x in (_read(acct, "cpuacct.usage_percpu") or "").split()]
        out["cpu"]["usage"] = {"total": _int(acct, "cpuacct.usage"), "percpu": percpu,
                               "kernel": ticks.get("system", 0) * 1_000_000_000 // hz,
                               "user": ticks.get("user", 0) * 1_000_000_000 // hz}
    cpu = of("cpu")
    if cpu:
        st = _keyed(cpu, "cpu.stat")
        out["cpu"]["throttling"] = {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                                    "throttled_time": st.get("throttled_time", 0)}
    mem = of("memory")
    if mem:
        raw = _keyed(mem, "memory.stat")

        def entry(prefix: str) -> dict[str, int]:
            return {"limit": _int(mem, prefix + "limit_in_bytes"), "usage": _int(mem, prefix + "usage_in_bytes"),
                    "max": _int(mem, prefix + "max_usage_in_bytes"), "failcnt": _int(mem, prefix + "failcnt")}

        out["memory"] = {"cache": raw.get("total_cache", raw.get("cache", 0)), "usage": entry("memory."),
                         "swap": entry("memory.memsw."), "kernel": entry("memory.kmem."),
                         "kernelTCP": entry("memory.kmem.tcp."), "raw": raw}
    pids = of("pids")
    if pids:
        out["pids"] = {"current": _int(pids, "pids.current"), "limit": _int(pids, "pids.max")}
    blkio = of("blkio")
    if blkio:
        for name, key in (("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
                          ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive")):
            entries = []
            for line in (_read(blkio, name) or "").splitlines():
                parts = line.split()
                if len(parts) == 3 and ":" in parts[0]:
                    major, _, minor = parts[0].partition(":")
                    entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
            if entries:
                out["blkio"][key] = entries
    huge = of("hugetlb")
    if huge:
        out["hugetlb"] = {size: {"usage": _int(huge, "hugetlb.%s.usage_in_bytes" % size),
                                 "max": _int(huge, "hugetlb.%s.max_usage_in_bytes" % size),
                                 "failcnt": _int(huge, "hugetlb.%s.failcnt" % size)}
                          for size in _hugepage_sizes(huge, ".usage_in_bytes")}
    return out
