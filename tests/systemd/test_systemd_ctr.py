"""containerd's ctr with the runc shim's systemd cgroup option (``--runc-systemd-cgroup``, what
``SystemdCgroup = true`` sets for CRI), on the guest with systemd as PID 1, with runc (the oracle) and pyoci.

One containerd of this module's own (root, state, socket in the tmp dir, the CRI plugin off). Per runtime: a
detached container from the busybox rootfs (``--rootfs``) with ``--memory-limit``, in cgroup
``system.slice:ctr:ID``; the unit ctr-ID.scope carries the limit; exec's exit status, pause/resume, kill,
delete; then no unit, no cgroup, no mount. The runtime is reached through a wrapper that logs its argv, so the
test sees it was called, with --systemd-cgroup.
"""
from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import cgroup_dirs_named, mounts_mentioning, wait_for
from v2.test_engines import RUNTIMES, logging_wrapper, run_cmd, systemctl_show

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


class Ctr:
    def __init__(self, d: Path) -> None:
        self.d = d
        self.sock = d / "containerd.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        d = self.d
        (d / "config.toml").write_text(
            'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            '[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s/ttrpc.sock"\n[debug]\n  address = "%s/debug.sock"\n'
            % (d, d, self.sock, d, d))
        with open(d / "containerd.log", "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(d / "config.toml")], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or (self.sock.exists() and self.cli("version").returncode == 0),
                 90, interval=0.5, what="containerd to answer")
        assert self.proc.poll() is None, (d / "containerd.log").read_text()[-2000:]

    def cli(self, *args: object) -> subprocess.CompletedProcess[str]:
        return run_cmd(["ctr", "-a", str(self.sock), "-n", "pyoci", *map(str, args)])

    def ok(self, *args: object) -> subprocess.CompletedProcess[str]:
        r = self.cli(*args)
        assert r.returncode == 0, "ctr %s: rc=%d\n%s\n%s" % (" ".join(map(str, args)), r.returncode, r.stdout,
                                                             r.stderr)
        return r

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    c = Ctr(tmp_path_factory.mktemp("ctr"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.mark.parametrize("runtime", ["runc", "pyoci"])
def test_ctr_systemd_cgroup(ctr: Ctr, rootfs: Path, runtime: str) -> None:
    log = ctr.d / ("calls-%s.log" % runtime)
    wrapper = logging_wrapper(ctr.d / runtime, RUNTIMES[runtime], log)
    cid = "ctr%s%s" % (runtime, uuid.uuid4().hex[:8])
    unit = "ctr-%s.scope" % cid
    ctr.ok("run", "-d", "--null-io", "--runc-binary", wrapper, "--runc-systemd-cgroup", "--cgroup",
           "system.slice:ctr:%s" % cid, "--memory-limit", 32 * MiB, "--rootfs", rootfs, cid, "/bin/sleep", "300")  # no image: no PATH in the spec
    try:
        calls = [c for c in log.read_text().splitlines() if " create " in " %s " % c and cid in c.split()]
        assert calls and "--systemd-cgroup" in calls[0].split(), calls
        p = systemctl_show(unit, "ActiveState", "MemoryMax", "Delegate")
        assert p == {"ActiveState": "active", "MemoryMax": str(32 * MiB), "Delegate": "yes"}, p
        d = CG / "system.slice" / unit
        assert (d / "memory.max").read_text().strip() == str(32 * MiB)
        r = ctr.cli("task", "exec", "--exec-id", "e1", cid, "/bin/sh", "-c", "exit 7")
        assert r.returncode == 7, (r.returncode, r.stderr)
        ctr.ok("task", "pause", cid)
        assert "frozen 1" in (d / "cgroup.events").read_text()
        ctr.ok("task", "resume", cid)
        assert "frozen 0" in (d / "cgroup.events").read_text()
        ctr.ok("task", "kill", "-s", "SIGKILL", cid)
        wait_for(lambda: "STOPPED" in ctr.ok("task", "ls").stdout, 60, interval=0.2, what="the task to stop")
        ctr.ok("task", "delete", cid)
        ctr.ok("container", "delete", cid)
    finally:
        ctr.cli("task", "delete", "-f", cid)
        ctr.cli("container", "delete", cid)
    assert systemctl_show(unit, "LoadState") == {"LoadState": "not-found"}
    assert not cgroup_dirs_named([cid]) and not mounts_mentioning(cid)
    assert os.path.exists(log)
