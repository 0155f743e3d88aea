"""runc's commands beyond the spec's operations: ps, pause/resume, update."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Bundle, Runtime, hierarchy_dirs

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def running(rt: Runtime, bundle: Bundle, script: str = "sleep 60 & sleep 61") -> str:
    bundle.sh(script)
    cid = rt.create(bundle, None, **DETACHED)
    rt.ok("start", cid)
    return cid


def cgroup_file(cid: str, controller: str, name: str) -> Path:
    return next(h for h in hierarchy_dirs() if h.name == controller) / cid / name


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
        assert cgroup_file(cid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
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
        assert cgroup_file(cid, "memory", "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert cgroup_file(cid, "pids", "pids.max").read_text().strip() == "20"
        assert cgroup_file(cid, "cpu", "cpu.shares").read_text().strip() == "512"
        (tmp_path / "r.json").write_text(json.dumps({"pids": {"limit": 30}}))
        rt.ok("update", "-r", tmp_path / "r.json", cid)
        assert cgroup_file(cid, "pids", "pids.max").read_text().strip() == "30"
        devices = cgroup_file(cid, "devices", "devices.list").read_text()
        assert devices.strip() and "a *:* rwm" not in devices  # device rules untouched by update
        assert "--memory" in rt.fail("update", "--memory", "lots", cid)
        assert "linux.resources.pids.limit" in rt.fail("update", "-r", "-", cid, input='{"pids": {"limit": "x"}}')
    finally:
        rt.delete(cid)
    assert "does not exist" in rt.fail("update", "--pids-limit", "1", cid)
