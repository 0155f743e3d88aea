"""Docker and Podman on this hybrid host (cgroup v1 controllers, no systemd), configured with the README's
snippets, with runc (the oracle) and pyoci: what the README's guide tells a user of such a host to do, run.

The engines, their private state and the runtime wrappers are tests/v2/test_engines.py's (``Engines``: one
dockerd of this module's own with the daemon.json snippet, podman with the containers.conf snippet through
CONTAINERS_CONF, the cgroupfs driver, the busybox image imported); the scenarios there read cgroup v2 files, so
the v1 ones are here: a container with ``-m 64m --pids-limit 42 --cpus 0.5`` has those limits in its v1
hierarchies (memory.limit_in_bytes, pids.max, cpu.cfs_quota_us/cpu.cfs_period_us), the runtime under test
created it, exec gives the process's status, stop and rm leave nothing (no runtime state, cgroup or mount).
The engines come from Debian (`make test` installs docker.io, containerd and podman); without them this module
fails rather than skips. The guests prove the same snippets on pure cgroup v2 and with systemd (tests/v2,
tests/systemd).
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

# ctx: the guest module's fixture (one per engine and runtime), here over this module's engines
from v2.test_engines import IMAGE, LONG_RUNNING, Ctx, Engines, ctx, managed_engines  # noqa: F401

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


def v1_cgroups(pid: int) -> dict[str, Path]:
    """Controller -> the directory of pid's cgroup on its v1 hierarchy (/proc/PID/cgroup; a hierarchy is
    mounted at /sys/fs/cgroup/<its controllers>, e.g. cpu,cpuacct)."""
    out = {}
    for line in Path("/proc/%d/cgroup" % pid).read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for ctrl in ctrls.split(","):
            if ctrl and not ctrl.startswith("name="):
                out[ctrl] = CG / ctrls / path.lstrip("/")
    return out


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Engines]:
    if (CG / "cgroup.controllers").exists() or not (CG / "memory").is_dir():
        pytest.skip("not a hybrid (cgroup v1) host")
    yield from managed_engines(tmp_path_factory.mktemp("engines"), rootfs,
                               "`make test` installs the engines (docker.io, containerd, podman)")


def test_limits_exec_stop_rm_on_v1(ctx: Ctx) -> None:
    name = "pyoci-hybrid-%s-%s" % (ctx.runtime, uuid.uuid4().hex[:8])
    # podman asks for RLIMIT_NOFILE and RLIMIT_NPROC 1048576 (also with --ulimit host), above this host's hard
    # limits, which a runtime without CAP_SYS_RESOURCE (here: not in the bounding set) cannot raise: runc and
    # pyoci both refuse. Lower ones instead, which any runtime may set.
    ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"] if ctx.podman else []
    r = ctx.run("-d", "--name", name, "-m", "64m", "--pids-limit", "42", "--cpus", "0.5", *ulimits, IMAGE,
                *LONG_RUNNING)
    assert r.returncode == 0, ctx.explain(r)
    cid = r.stdout.split()[-1]
    try:
        assert ctx.called("create", cid), "the %s wrapper was never asked to create %s" % (ctx.runtime, cid)
        pid = int(ctx.inspect(name, "{{.State.Pid}}"))
        cgroups = v1_cgroups(pid)
        memory, pids, cpu = cgroups["memory"], cgroups["pids"], cgroups["cpu"]
        assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * MiB
        assert (pids / "pids.max").read_text().strip() == "42"
        quota, period = (int((cpu / f).read_text()) for f in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        assert quota * 2 == period, (quota, period)
        r = ctx.cli("exec", name, "sh", "-c", "exit 3")
        assert r.returncode == 3, ctx.explain(r)
        ctx.ok("stop", "-t", "10", name)
        assert ctx.inspect(name, "{{.State.Status}}") == "exited"
        ctx.ok("rm", name)
        assert name not in ctx.ok("ps", "-a", "--format", "{{.Names}}").stdout.split()
    finally:
        ctx.cli("rm", "-f", name)
    ctx.assert_gone(cid)
    assert not memory.exists() and not pids.exists(), (memory, pids)
