"""process.scheduler (sched_setattr) and process.ioPriority (ioprio_set): applied to the container's process and
to exec'd ones, seen by the kernel; what the kernel would refuse with a bare EINVAL is an error naming the field,
at create and from `pyoci validate`."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Bundle, Runtime, one_line_error, wait_for

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
_libc = ctypes.CDLL(None, use_errno=True)
SYS_IOPRIO_GET = 252  # x86-64
IOPRIO_WHO_PROCESS = 1


def ioprio_of(pid: int) -> tuple[int, int]:
    """(class, level) of a process, from the kernel."""
    v = _libc.syscall(SYS_IOPRIO_GET, IOPRIO_WHO_PROCESS, pid)
    assert v >= 0, os.strerror(ctypes.get_errno())
    return v >> 13, v & 0x1FFF


def stat_fields(text: str) -> dict[str, int]:
    """nice, rt_priority and policy from a /proc/PID/stat line (fields 19, 40 and 41)."""
    rest = text.rsplit(")", 1)[1].split()  # rest[0] is field 3
    return {"nice": int(rest[16]), "rt_priority": int(rest[37]), "policy": int(rest[38])}


needs_x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="ioprio_get's number is x86-64's")


def test_scheduler_batch_with_nice(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    out = rt.sh(bundle, "cat /proc/self/stat")
    assert stat_fields(out) == {"nice": 7, "rt_priority": 0, "policy": 3}


def test_scheduler_idle(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["scheduler"] = {"policy": "SCHED_IDLE"}
    assert stat_fields(rt.sh(bundle, "cat /proc/self/stat"))["policy"] == 5


def test_scheduler_fifo_applied_or_named(rt: Runtime, bundle: Bundle) -> None:
    """SCHED_FIFO: applied where the container's cgroup may run real-time tasks; where it has no real-time budget
    (RT group scheduling, as on this build host: a new cgroup's cpu.rt_runtime_us is 0), the kernel's EPERM is
    create's one-line error naming the field, as runc fails there too."""
    bundle.process["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    bundle.sh("cat /proc/self/stat")
    r = rt.run(bundle)
    if r.returncode == 0:
        assert stat_fields(r.stdout) == {"nice": 0, "rt_priority": 10, "policy": 1}
    else:
        assert one_line_error(r) == "pyoci: process.scheduler: cannot set SCHED_FIFO: Operation not permitted"


@needs_x86_64
def test_io_priority_of_the_container_process(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 5}
    with rt.container(bundle) as cid:
        assert ioprio_of(rt.state(cid)["pid"]) == (2, 5)  # IOPRIO_CLASS_BE: the process waiting for start
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    with rt.container(bundle) as cid:
        assert ioprio_of(rt.state(cid)["pid"])[0] == 3


@needs_x86_64
def test_exec_process_file_scheduling(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """exec --process honours scheduler and ioPriority as config.json's process does."""
    bundle.args("sleep", "30")
    proc = {"args": ["cat", "/proc/self/stat"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 3}, "ioPriority": {"class": "IOPRIO_CLASS_BE",
                                                                             "priority": 6}}
    (tmp_path / "p1.json").write_text(json.dumps(proc))
    (tmp_path / "p2.json").write_text(json.dumps(dict(proc, args=["sleep", "30"])))
    with rt.container(bundle, **DETACHED) as cid:
        rt.ok("start", cid)
        out = rt.ok("exec", "--process", tmp_path / "p1.json", cid).stdout
        assert stat_fields(out) == {"nice": 3, "rt_priority": 0, "policy": 3}
        pid_file = tmp_path / "exec.pid"
        rt.ok("exec", "-d", "--pid-file", pid_file, "--process", tmp_path / "p2.json", cid, **DETACHED)
        pid = int(pid_file.read_text())
        assert ioprio_of(pid) == (2, 6)
        (tmp_path / "p3.json").write_text(json.dumps(dict(proc, scheduler={"policy": "SCHED_ISO"})))
        err = rt.fail("exec", "--process", tmp_path / "p3.json", cid)
        assert "process.scheduler.policy: SCHED_ISO is not a scheduling policy Linux implements" in err
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), what="the exec'd process to end with its container")


@pytest.mark.parametrize("sched, needle", [
    ({"policy": "SCHED_ISO"}, "process.scheduler.policy: SCHED_ISO is not a scheduling policy Linux implements"),
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority: only SCHED_FIFO and SCHED_RR"),
    ({"policy": "SCHED_RR"}, "process.scheduler.priority: SCHED_RR needs a priority between 1 and 99"),
    ({"policy": "SCHED_BATCH", "runtime": 100}, "process.scheduler: runtime, deadline and period are for"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}, "process.scheduler.flags: unknown flag SCHED_FLAG_NOPE"),
])
def test_scheduler_mistakes_are_named(rt: Runtime, bundle: Bundle, sched: dict, needle: str) -> None:
    bundle.process["scheduler"] = sched
    assert needle in rt.refuse(bundle)
    out = rt.cmd("validate", "--bundle", bundle.path)
    assert out.returncode != 0 and needle in out.stdout + out.stderr, out


def test_io_priority_out_of_range_is_named(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 9}
    assert "process.ioPriority.priority" in rt.refuse(bundle)
