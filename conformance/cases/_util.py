"""Host-side observation helpers shared by the cases."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, TypeError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _cgroup_mounts() -> list[tuple[str, set[str], str]]:
    """(fstype, controllers, mountpoint) of the host's cgroup mounts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype = fields[sep + 1]
            if fstype == "cgroup2":
                out.append(("cgroup2", set(), fields[4]))
            elif fstype == "cgroup":
                opts = set(fields[sep + 3].split(","))
                ctrls = {o for o in opts if o in KNOWN_V1} | {o for o in opts if o.startswith("name=")}
                out.append(("cgroup", ctrls, fields[4]))
    return out


KNOWN_V1 = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
            "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"}


def cgroup_dirs_of(pid) -> list[Path]:
    """Host directories of every cgroup (v1 hierarchies and v2) that ``pid`` belongs to,
    excluding hierarchy roots."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except (OSError, TypeError):
        return []
    mounts = _cgroup_mounts()
    out = []
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if path == "/":
            continue
        if hid == "0" and ctrls == "":
            mps = [mp for fs, _, mp in mounts if fs == "cgroup2"]
        else:
            want = set(ctrls.split(","))
            mps = [mp for fs, c, mp in mounts if fs == "cgroup" and want <= c and c]
        for mp in mps[:1]:
            out.append(Path(mp + path))
    return out


def cgroup_file(pid, controller: str, v1_name: str, v2_name: str) -> Path | None:
    """Path of a controller file for ``pid``'s cgroup: the v1 file when ``controller`` is
    mounted as a v1 hierarchy, else the v2 file."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except (OSError, TypeError):
        return None
    mounts = _cgroup_mounts()
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            for fs, c, mp in mounts:
                if fs == "cgroup" and controller in c:
                    return Path(mp + path) / v1_name
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and ctrls == "":
            for fs, _, mp in mounts:
                if fs == "cgroup2":
                    f = Path(mp + path) / v2_name
                    if f.exists():
                        return f
    return None


def cgroup_v1_root(controller: str) -> Path | None:
    for fs, c, mp in _cgroup_mounts():
        if fs == "cgroup" and controller in c:
            return Path(mp)
    return None


def host_ns(ns: str) -> str:
    return os.readlink(f"/proc/self/ns/{ns}")
