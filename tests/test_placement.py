"""Where the container's processes run and allocate: process.execCPUAffinity (sched_setaffinity, exec only, as
config.md says) and linux.memoryPolicy (set_mempolicy), seen by the kernel through /proc; exec --process
honouring oomScoreAdj and refusing LSM labels; linux.intelRdt refused where it cannot be applied; each mistake
an error naming the field, at create, at exec and from `pyoci validate`."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import Bundle, Runtime, one_line_error

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs CPUs 0 and 1")
needs_numa = pytest.mark.skipif(not os.path.isdir("/sys/devices/system/node/node0"), reason="no NUMA node 0")


def allowed(text: str) -> str:
    """Cpus_allowed_list from /proc/PID/status text."""
    return next(line.split()[1] for line in text.splitlines() if line.startswith("Cpus_allowed_list:"))


def exec_process(rt: Runtime, cid: str, tmp_path: Path, script: str, **fields: Any) -> subprocess.CompletedProcess[str]:
    proc = {"args": ["sh", "-c", script], "cwd": "/", "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0},
            **fields}
    path = tmp_path / ("p%d.json" % len(list(tmp_path.glob("p*.json"))))
    path.write_text(json.dumps(proc))
    return rt.cmd("exec", "--process", path, cid)


@needs_two_cpus
def test_exec_cpu_affinity_initial_and_final(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle, **DETACHED) as cid:
        rt.ok("start", cid)
        status = "cat /proc/self/status"
        r = exec_process(rt, cid, tmp_path, status, execCPUAffinity={"initial": "0", "final": "1"})
        assert r.returncode == 0 and allowed(r.stdout) == "1", r.stderr
        r = exec_process(rt, cid, tmp_path, status, execCPUAffinity={"final": "0"})
        assert allowed(r.stdout) == "0"
        # only initial: once in the cgroup the process gets every CPU the container may use (the spec's
        # default), not the initial one; the runtime itself is pinned to CPU 1 to tell them apart
        argv = rt.argv("exec", "--process", tmp_path / "initial.json", cid)
        (tmp_path / "initial.json").write_text(json.dumps({"args": ["/bin/cat", "/proc/self/status"], "cwd": "/",
                                                           "execCPUAffinity": {"initial": "1"}}))
        r = subprocess.run(argv, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {1}))
        assert r.returncode == 0, r.stderr
        assert allowed(r.stdout) == allowed(open("/proc/self/status").read()), "reset to the container's CPUs"
        # a CPU the host lacks: the kernel's answer, naming the field
        r = exec_process(rt, cid, tmp_path, "true", execCPUAffinity={"initial": "4000"})
        assert one_line_error(r) == ("pyoci: process.execCPUAffinity.initial: cannot run on CPUs 4000: "
                                     "Invalid argument"), r.stderr
        r = exec_process(rt, cid, tmp_path, "true", execCPUAffinity={"final": "0-1x"})
        assert "process.execCPUAffinity.final: '0-1x' is not a list like 0-3,7" in r.stderr
        assert r.returncode != 0


@needs_two_cpus
def test_config_exec_cpu_affinity_is_for_exec_not_the_init(rt: Runtime, bundle: Bundle) -> None:
    """config.md: execCPUAffinity "is not applicable to the container's init process"; an exec without
    --process takes the container's process, and with it the affinity (how CRI-O pins `kubectl exec`)."""
    bundle.args("sleep", "30")
    bundle.process["execCPUAffinity"] = {"final": "1"}
    with rt.container(bundle, **DETACHED) as cid:
        rt.ok("start", cid)
        init = open("/proc/%d/status" % rt.state(cid)["pid"]).read()
        assert allowed(init) == allowed(open("/proc/self/status").read())
        assert allowed(rt.ok("exec", cid, "cat", "/proc/self/status").stdout) == "1"


def test_exec_process_oom_score_adj_and_labels(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle, **DETACHED) as cid:
        rt.ok("start", cid)
        r = exec_process(rt, cid, tmp_path, "cat /proc/self/oom_score_adj", oomScoreAdj=512)
        assert r.returncode == 0 and r.stdout.split() == ["512"], r.stderr
        before = set(os.listdir("/proc"))
        for field in ("apparmorProfile", "selinuxLabel"):
            r = exec_process(rt, cid, tmp_path, "true", **{field: "some-label"})
            assert r.returncode != 0
            assert one_line_error(r).startswith("pyoci: process.%s: LSM labels are not applied" % field)
        assert rt.status(cid) == "running"
        assert not [p for p in set(os.listdir("/proc")) - before if p.isdigit() and
                    open("/proc/%s/cmdline" % p, "rb").read().startswith(b"sh")], "nothing was started"


@needs_numa
@pytest.mark.parametrize("policy, shown", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
    ({"mode": "MPOL_DEFAULT"}, "default"),
])
def test_memory_policy_of_the_init_and_of_exec(rt: Runtime, bundle: Bundle, policy: dict, shown: str) -> None:
    """numa_maps shows the task's policy for mappings without one of their own (the first: the program)."""
    bundle.linux["memoryPolicy"] = policy
    bundle.args("sleep", "30")
    with rt.container(bundle, **DETACHED) as cid:
        first = open("/proc/%d/numa_maps" % rt.state(cid)["pid"]).readline().split()
        assert first[1] == shown, first
        rt.ok("start", cid)
        assert rt.ok("exec", cid, "head", "-n1", "/proc/self/numa_maps").stdout.split()[1] == shown


@needs_numa
def test_memory_policy_on_a_node_the_host_lacks(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    assert one_line_error(rt.run(bundle, None)) == ("pyoci: linux.memoryPolicy: cannot set MPOL_BIND on nodes 63: "
                                                    "Invalid argument")


@pytest.mark.parametrize("policy, needle", [
    ({"mode": "MPOL_NOPE"}, "linux.memoryPolicy.mode"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes: must be empty for MPOL_DEFAULT"),
    ({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}, "linux.memoryPolicy.flags: MPOL_LOCAL takes no flags"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
     "MPOL_F_NUMA_BALANCING is for MPOL_BIND and MPOL_PREFERRED_MANY only"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "linux.memoryPolicy.flags: unknown flag MPOL_F_NOPE"),
    ({"mode": "MPOL_BIND", "nodes": "1-0"}, "linux.memoryPolicy.nodes: '1-0' is not a list like 0-3,7"),
])
def test_memory_policy_mistakes_are_named(rt: Runtime, bundle: Bundle, policy: dict, needle: str) -> None:
    bundle.linux["memoryPolicy"] = policy
    assert needle in rt.refuse(bundle)
    out = rt.cmd("validate", "--bundle", bundle.path)
    assert out.returncode != 0 and needle in out.stdout, out


def test_intel_rdt_is_refused_where_it_cannot_be_applied(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["intelRdt"] = {"closID": "guaranteed", "l3CacheSchema": "L3:0=f"}
    err = rt.refuse(bundle)
    assert "linux.intelRdt: " in err, err
    out = rt.cmd("validate", "--bundle", bundle.path)
    assert "warning: linux.intelRdt: valid, but pyoci create refuses it" in out.stdout, out


def test_listener_metadata_needs_a_listener_path(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}
    assert "linux.seccomp.listenerMetadata: must not be set without listenerPath" in rt.refuse(bundle)


def test_validate_names_what_create_refuses(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["apparmorProfile"] = "p"
    bundle.linux["mountLabel"] = "l"
    bundle.save()
    out = rt.cmd("validate", "--bundle", bundle.path)
    assert out.returncode == 0, out  # valid per the spec
    for path in ("process.apparmorProfile", "linux.mountLabel"):
        assert "warning: %s: valid, but pyoci create refuses it" % path in out.stdout, out.stdout
