"""runc's commands beyond the spec's operations: ps, pause/resume, update."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import Bundle, Runtime

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def running(rt: Runtime, bundle: Bundle, script: str = "sleep 60 & sleep 61") -> str:
    bundle.sh(script)
    cid = rt.create(bundle, None, **DETACHED)
    rt.ok("start", cid)
    return cid


def controller_version(controller: str) -> int:
    """1 where the controller has a v1 hierarchy here, else 2 (pure v2 hosts: the unified hierarchy)."""
    from pyoci.cgroups import hierarchies

    return 1 if any(h.version == 1 and controller in h.controllers for h in hierarchies()) else 2


def cgroup_file(cid: str, controller: str, name: str) -> Path:
    """The container's (default /ID) cgroup file on the hierarchy that has controller, as pyoci's cgroup layer
    finds it: its v1 hierarchy, else the unified one."""
    from pyoci.cgroups import hierarchies

    hs = hierarchies()
    h = next((h for h in hs if h.version == 1 and controller in h.controllers), None) or \
        next(h for h in hs if h.version == 2)
    return Path(h.mountpoint) / cid / name


def test_ps_lists_the_containers_processes(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle)
    try:
        pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
        init = rt.state(cid)["pid"]
        assert init in pids and len(pids) == 2
        table = rt.ok("ps", cid).stdout.splitlines()
        assert "PID" in table[0].split() and len(table) == 3
        assert all("sleep" in line for line in table[1:])
        custom = rt.ok("ps", cid, "-o", "pid,comm").stdout.splitlines()
        assert custom[0].split() == ["PID", "COMMAND"] and {line.split()[0] for line in custom[1:]} == set(map(str, pids))
    finally:
        rt.delete(cid)


def test_pause_and_resume(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle)
    try:
        rt.ok("pause", cid)
        assert rt.status(cid) == "paused"
        if controller_version("freezer") == 1:
            assert cgroup_file(cid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
        else:
            assert "frozen 1" in cgroup_file(cid, "freezer", "cgroup.events").read_text().splitlines()
        assert "paused" in rt.fail("exec", cid, "true")
        assert "paused" in rt.fail("pause", cid)
        assert "paused" in rt.fail("delete", cid)
        rt.ok("resume", cid)
        assert rt.status(cid) == "running"
        assert "running" in rt.fail("resume", cid)
        rt.ok("exec", cid, "true")
        rt.ok("pause", cid)
    finally:
        rt.delete(cid)  # delete --force of a paused container: killed, thawed, gone


def test_update_changes_the_limits(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = running(rt, bundle)
    try:
        rt.ok("update", "--memory", "64m", "--pids-limit", "20", "--cpu-share", "512", cid)
        v1 = {c: controller_version(c) == 1 for c in ("memory", "cpu", "devices")}
        memory = "memory.limit_in_bytes" if v1["memory"] else "memory.max"
        assert cgroup_file(cid, "memory", memory).read_text().strip() == str(64 << 20)
        assert cgroup_file(cid, "pids", "pids.max").read_text().strip() == "20"
        # v2: cpu.weight = 1 + ((shares - 2) * 9999) // 262142 (runc's conversion)
        cpu, value = ("cpu.shares", "512") if v1["cpu"] else ("cpu.weight", str(1 + (510 * 9999) // 262142))
        assert cgroup_file(cid, "cpu", cpu).read_text().strip() == value
        (tmp_path / "r.json").write_text(json.dumps({"pids": {"limit": 30}}))
        rt.ok("update", "-r", tmp_path / "r.json", cid)
        assert cgroup_file(cid, "pids", "pids.max").read_text().strip() == "30"
        if v1["devices"]:  # (v2 has no devices file: device rules are an eBPF program)
            devices = cgroup_file(cid, "devices", "devices.list").read_text()
            assert devices.strip() and "a *:* rwm" not in devices  # device rules untouched by update
        assert "--memory" in rt.fail("update", "--memory", "lots", cid)
        assert "linux.resources.pids.limit" in rt.fail("update", "-r", "-", cid, input='{"pids": {"limit": "x"}}')
    finally:
        rt.delete(cid)
    assert "does not exist" in rt.fail("update", "--pids-limit", "1", cid)


def test_update_cpu_burst_and_idle(rt: Runtime, bundle: Bundle) -> None:
    """runc HEAD's `update --cpu-burst` and `--cpu-idle` (v1: cpu.cfs_burst_us; v2: cpu.max.burst; cpu.idle)."""
    cid = running(rt, bundle)
    try:
        v1 = controller_version("cpu") == 1
        burst = "cpu.cfs_burst_us" if v1 else "cpu.max.burst"
        if not cgroup_file(cid, "cpu", burst).exists() or not cgroup_file(cid, "cpu", "cpu.idle").exists():
            pytest.skip("this kernel has no CFS burst or cpu.idle")
        rt.ok("update", "--cpu-quota", "50000", "--cpu-burst", "20000", cid)
        assert cgroup_file(cid, "cpu", burst).read_text().strip() == "20000"
        rt.ok("update", "--cpu-idle", "1", cid)
        assert cgroup_file(cid, "cpu", "cpu.idle").read_text().strip() == "1"
        rt.ok("update", "--cpu-idle", "0", cid)
        assert cgroup_file(cid, "cpu", "cpu.idle").read_text().strip() == "0"
    finally:
        rt.delete(cid)
