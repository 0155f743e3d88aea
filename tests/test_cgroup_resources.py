"""Cgroup.apply on this host's real cgroups: the files it writes, and limits proven end to end by a child.

Every test makes its own cgroup (/pyoci-test-<uuid> on every hierarchy), puts only processes it started in
it, kills them and removes the cgroup. The hybrid-host parts (hugetlb on the unified hierarchy) are skipped
unless the controller is already enabled there: enabling it would change the host's root cgroup.
"""
from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from pyoci.cgroups import Cgroup, hierarchies
from pyoci.cgroups.devices import DEFAULT_DEVICE_RULES
from pyoci.errors import ConfigError, ContainerError

V1 = {c for h in hierarchies() if h.version == 1 for c in h.controllers}
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not {"memory", "pids", "devices", "cpu"} <= V1,
                                reason="needs root and the v1 memory, pids, devices and cpu controllers")


@pytest.fixture
def cg() -> Iterator[Cgroup]:
    group = Cgroup.for_container("/pyoci-test-%s" % uuid.uuid4().hex[:12], "unused")
    group.create()
    try:
        yield group
    finally:
        deadline = time.monotonic() + 10
        while group.pids() and time.monotonic() < deadline:  # only our children are ever in it
            group.signal_all(signal.SIGKILL)
            time.sleep(0.02)
        group.destroy()
    left = [p for p in group.created if os.path.exists(p)]
    assert not left, "cgroups left behind: %s" % left


def path(cg: Cgroup, ctrl: str) -> Path:
    for name, p in cg.paths.items():
        if ctrl in name.split(","):
            return Path(p)
    raise AssertionError("no %s hierarchy" % ctrl)


def value(cg: Cgroup, ctrl: str, name: str) -> str:
    return (path(cg, ctrl) / name).read_text().strip()


def run_in(cg: Cgroup, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run python code in a child that joins cg before it does anything: it waits for a line on stdin."""
    p = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)
        out, err = p.communicate("go\n", timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def root_disk() -> tuple[int, int]:
    """major, minor of the block device holding / (a real disk, so opening its node can succeed)."""
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    if not os.path.exists("/sys/dev/block/%d:%d" % (major, minor)):
        pytest.skip("/ is not on a block device")
    return major, minor


def free_loop_device() -> tuple[int, int]:
    """major, minor of an unbound loop device: a block device whose node opens (r and w) harmlessly."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith("loop") and not os.path.exists("/sys/block/%s/loop/backing_file" % name):
            major, minor = open("/sys/block/%s/dev" % name).read().split(":")
            return int(major), int(minor)
    pytest.skip("no unbound loop device")


def block_node(tmp_path: Path) -> tuple[Path, int, int]:
    """A mknod'd block node in tmp_path that this (unconfined) test process can open read-write."""
    major, minor = free_loop_device()
    node = tmp_path / "blockdev"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(major, minor))
    for flags in (os.O_RDONLY, os.O_RDWR):
        os.close(os.open(node, flags))  # control: outside the container's cgroup it opens fine
    return node, major, minor


# ------------------------------------------------------------------------------------------- files written
def test_writes_every_v1_file(cg: Cgroup) -> None:
    major, minor = root_disk()
    cg.apply({
        "memory": {"limit": 96 << 20, "swap": 96 << 20, "reservation": 32 << 20, "swappiness": 10,
                   "kernel": -1, "kernelTCP": -1},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0", "mems": "0",
                "idle": 0},
        "pids": {"limit": 42},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]},
    })
    assert value(cg, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert value(cg, "memory", "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert value(cg, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert value(cg, "memory", "memory.swappiness") == "10"
    assert value(cg, "cpu", "cpu.shares") == "512"
    assert value(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    assert value(cg, "cpu", "cpu.cfs_period_us") == "100000"
    if (path(cg, "cpu") / "cpu.cfs_burst_us").exists():
        assert value(cg, "cpu", "cpu.cfs_burst_us") == "1000"
    assert value(cg, "cpuset", "cpuset.cpus") == "0"
    assert value(cg, "cpuset", "cpuset.mems") == "0"
    assert value(cg, "pids", "pids.max") == "42"
    assert value(cg, "blkio", "blkio.throttle.read_bps_device") == "%d:%d %d" % (major, minor, 1 << 20)
    assert value(cg, "blkio", "blkio.throttle.write_iops_device") == "%d:%d 300" % (major, minor)
    # no rules given: still deny-all plus the defaults every container needs (runc)
    assert value(cg, "devices", "devices.list").splitlines() == list(DEFAULT_DEVICE_RULES)


def test_empty_resources_only_restrict_devices(cg: Cgroup) -> None:
    cg.apply({})
    assert value(cg, "devices", "devices.list").splitlines() == list(DEFAULT_DEVICE_RULES)
    assert value(cg, "pids", "pids.max") == "max"
    assert value(cg, "cpu", "cpu.shares") == "1024"


def test_pids_minus_one_and_zero(cg: Cgroup) -> None:
    cg.apply({"pids": {"limit": 0}})
    assert value(cg, "pids", "pids.max") == "0"  # runtime-spec: 0 is a real limit
    cg.apply({"pids": {"limit": -1}})
    assert value(cg, "pids", "pids.max") == "max"


def test_realtime_bandwidth(cg: Cgroup) -> None:
    if not (path(cg, "cpu") / "cpu.rt_runtime_us").exists():
        pytest.skip("no CONFIG_RT_GROUP_SCHED")
    cg.apply({"cpu": {"realtimePeriod": 500000, "realtimeRuntime": 5000}})
    assert value(cg, "cpu", "cpu.rt_period_us") == "500000"
    assert value(cg, "cpu", "cpu.rt_runtime_us") == "5000"


def test_memory_limits_raised_then_lowered_in_the_kernels_order(cg: Cgroup) -> None:
    def limits() -> tuple[int, int]:
        return (int(value(cg, "memory", "memory.limit_in_bytes")),
                int(value(cg, "memory", "memory.memsw.limit_in_bytes")))

    cg.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    assert limits() == (64 << 20, 128 << 20)
    # raising: memory.limit_in_bytes first would exceed the old memsw (128M) and fail; apply orders it
    with pytest.raises(OSError) as e:
        (path(cg, "memory") / "memory.limit_in_bytes").write_text(str(256 << 20))
    assert e.value.errno == errno.EINVAL
    cg.apply({"memory": {"limit": 256 << 20, "swap": 512 << 20}})
    assert limits() == (256 << 20, 512 << 20)
    # lowering: memsw first would go below the current limit (256M) and fail
    with pytest.raises(OSError) as e:
        (path(cg, "memory") / "memory.memsw.limit_in_bytes").write_text(str(64 << 20))
    assert e.value.errno == errno.EINVAL
    cg.apply({"memory": {"limit": 32 << 20, "swap": 64 << 20}})
    assert limits() == (32 << 20, 64 << 20)
    cg.apply({"memory": {"limit": -1}})  # unlimited memory lifts memory+swap too
    assert limits()[0] == limits()[1] > 1 << 60


# --------------------------------------------------------------------------------------------- end to end
def test_pids_limit_makes_the_sixth_task_fail(cg: Cgroup) -> None:
    cg.apply({"pids": {"limit": 5}})
    r = run_in(cg, """
import os
r, w = os.pipe()
n = 0
while n < 50:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
print(n, open("/proc/self/cgroup").read().count("pyoci-test"))
os.close(w)
for _ in range(n):
    os.wait()
""")
    assert r.returncode == 0, r.stderr
    forks, placed = r.stdout.split()
    assert int(placed) > 0, "the child was not in the test cgroup"
    assert forks == "4", "5 tasks allowed: the child and 4 forks; the 5th fork (6th task) must fail"


def test_memory_limit_oom_kills_a_process_above_it(cg: Cgroup) -> None:
    cg.apply({"memory": {"limit": 48 << 20, "swap": 48 << 20}})  # memory+swap = memory: no swapping out
    small = run_in(cg, "b = b'x' * (8 << 20)\nprint('ok')")
    assert small.returncode == 0 and small.stdout.strip() == "ok", small.stderr
    big = run_in(cg, "b = b'x' * (256 << 20)\nprint('survived')")
    assert big.returncode == -signal.SIGKILL, (big.returncode, big.stdout, big.stderr)
    oom = dict(line.split() for line in value(cg, "memory", "memory.oom_control").splitlines())
    assert int(oom["oom_kill"]) == 1, oom  # the memory cgroup's OOM killer did it, not something else


def test_devices_deny_all_then_rules_then_defaults(cg: Cgroup, tmp_path: Path) -> None:
    disk, major, minor = block_node(tmp_path)
    kmsg = tmp_path / "kmsg"  # made by the child: c 1:11, not in the defaults
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}]})
    rules = value(cg, "devices", "devices.list").splitlines()
    assert rules == ["b %d:%d r" % (major, minor)] + list(DEFAULT_DEVICE_RULES)
    r = run_in(cg, """
import os, stat
def try_open(p, flags):
    try:
        os.close(os.open(p, flags))
        return "ok"
    except OSError as e:
        return "errno=%d" % e.errno
os.mknod(KMSG, stat.S_IFCHR | 0o600, os.makedev(1, 11))  # mknod is allowed for every device ("c *:* m")
print(try_open("/dev/null", os.O_RDWR), try_open("/dev/zero", os.O_RDONLY), try_open("/dev/urandom", os.O_RDONLY))
print(try_open(DISK, os.O_RDONLY), try_open(DISK, os.O_RDWR), try_open(KMSG, os.O_RDONLY))
""".replace("KMSG", repr(str(kmsg))).replace("DISK", repr(str(disk))))
    assert r.returncode == 0, r.stderr
    defaults, limited = r.stdout.splitlines()
    assert defaults.split() == ["ok", "ok", "ok"]
    assert limited.split() == ["ok", "errno=%d" % errno.EPERM, "errno=%d" % errno.EPERM]
    os.close(os.open(kmsg, os.O_RDONLY))  # control: the same node opens outside the container's cgroup


def test_a_rule_denying_a_default_device_closes_it(cg: Cgroup) -> None:
    """The defaults come after the config's rules, less what the config denies for exactly that device."""
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]})
    rules = value(cg, "devices", "devices.list").splitlines()
    assert "c 1:3 rm" in rules and "c 1:3 rwm" not in rules
    r = run_in(cg, "import os\nos.close(os.open('/dev/null', os.O_RDONLY))\nos.open('/dev/null', os.O_WRONLY)")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr


def test_devices_default_is_deny(cg: Cgroup, tmp_path: Path) -> None:
    disk, _major, _minor = block_node(tmp_path)
    cg.apply({})
    r = run_in(cg, """
import os
try:
    os.close(os.open(%r, os.O_RDONLY))
    print("opened")
except PermissionError:
    print("EPERM")
os.close(os.open("/dev/null", os.O_WRONLY))
""" % str(disk))
    assert (r.returncode, r.stdout.strip()) == (0, "EPERM"), r.stderr


def test_cpuset_pins_the_process(cg: Cgroup) -> None:
    cpus = value(cg, "cpuset", "cpuset.cpus")
    first = cpus.split(",")[0].split("-")[0]
    cg.apply({"cpu": {"cpus": first}})
    r = run_in(cg, "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('Cpus_allowed_list')][0])")
    assert r.stdout.strip() == first, r.stderr


def test_unified_files_on_the_v2_hierarchy(cg: Cgroup) -> None:
    if "" not in cg.paths:
        pytest.skip("no cgroup v2 hierarchy")
    cg.apply({"unified": {"cgroup.max.depth": "3", "cgroup.max.descendants": "7"}})
    assert Path(cg.paths[""], "cgroup.max.depth").read_text().strip() == "3"
    assert Path(cg.paths[""], "cgroup.max.descendants").read_text().strip() == "7"
    with pytest.raises(ContainerError, match=r"^linux\.resources\.unified\.cgroup\.nope: cannot write "
                                             r"cgroup\.nope=1: No such file or directory$"):
        cg.apply({"unified": {"cgroup.nope": "1"}})


def test_hugetlb_where_the_controller_is(cg: Cgroup) -> None:
    sizes = sorted(os.listdir("/sys/kernel/mm/hugepages")) if os.path.isdir("/sys/kernel/mm/hugepages") else []
    if not sizes:
        pytest.skip("no huge pages")
    v2 = Path(cg.roots.get("", "/nonexistent"))
    v2_enabled = (v2 / "cgroup.subtree_control").exists() and \
        "hugetlb" in (v2 / "cgroup.subtree_control").read_text().split()
    if "hugetlb" not in V1 and not v2_enabled:
        pytest.skip("hugetlb is on cgroup v2 here but not enabled in its root: enabling it would change the host")
    kb = int(sizes[0][len("hugepages-"):-2])
    size = "%dMB" % (kb // 1024) if kb % (1 << 20) else "%dGB" % (kb >> 20)
    cg.apply({"hugepageLimits": [{"pageSize": size, "limit": 4 * kb * 1024}]})
    d = path(cg, "hugetlb") if "hugetlb" in V1 else Path(cg.paths[""])
    name = "hugetlb.%s.limit_in_bytes" % size if "hugetlb" in V1 else "hugetlb.%s.max" % size
    assert (d / name).read_text().strip() == str(4 * kb * 1024)


# ------------------------------------------------------------------------------------- refusals and errors
def test_write_error_names_field_file_and_errno(cg: Cgroup) -> None:
    if not (path(cg, "cpu") / "cpu.rt_runtime_us").exists():
        pytest.skip("no CONFIG_RT_GROUP_SCHED")
    with pytest.raises(ContainerError) as e:
        cg.apply({"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 200000}})  # runtime > period
    assert str(e.value) == ("linux.resources.cpu.realtimeRuntime: cannot write cpu.rt_runtime_us=200000: "
                            "Invalid argument")


def test_cpu_shares_clamped_by_the_kernel_is_an_error(cg: Cgroup) -> None:
    with pytest.raises(ContainerError, match=r"^linux\.resources\.cpu\.shares: 1 is out of range: the minimum "
                                             r"allowed cpu\.shares is 2$"):
        cg.apply({"cpu": {"shares": 1}})


def test_memory_limit_below_usage(cg: Cgroup) -> None:
    p = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\nb = b'x' * (64 << 20)\n"
                          "print('ready', flush=True)\nsys.stdin.readline()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.limit: memory limit 16777216 is "
                                                 r"not above the current usage \d+ \(checkBeforeUpdate\)$"):
            cg.apply({"memory": {"limit": 16 << 20, "checkBeforeUpdate": True}})
        assert int(value(cg, "memory", "memory.limit_in_bytes")) > 1 << 60  # refused before any write
        with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.limit: cannot write "
                                                 r"memory\.limit_in_bytes=16777216: Device or resource busy "
                                                 r"\(usage \d+, peak \d+\)$"):
            cg.apply({"memory": {"limit": 16 << 20, "swap": 16 << 20}})  # no swap to push it to: EBUSY
        assert p.poll() is None, "lowering the limit must not kill the process (v1 refuses instead)"
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("resources, message", [
    ({"network": {"classID": 1048577}},
     r"linux\.resources\.network\.classID: the net_cls controller is not mounted on this host"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 5}]}},
     r"linux\.resources\.network\.priorities: the net_prio controller is not mounted on this host"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}},
     r"linux\.resources\.rdma: the rdma controller is not mounted on this host"),
    ({"unified": {"memory.high": "1000000"}},
     r"linux\.resources\.unified\.memory\.high: the memory controller is mounted as cgroup v1 on this host"),
])
def test_controller_missing_on_this_host_is_refused_before_any_write(cg: Cgroup, resources: dict,
                                                                    message: str) -> None:
    ctrl = message.split(" the ")[1].split()[0]
    if ctrl in V1 and ctrl != "memory":
        pytest.skip("%s is mounted here" % ctrl)
    if "unified" in resources and "" not in cg.paths:
        pytest.skip("no cgroup v2 hierarchy")
    with pytest.raises(ContainerError, match="^" + message):
        cg.apply({"pids": {"limit": 7}, **resources})
    assert value(cg, "pids", "pids.max") == "max"
    assert value(cg, "devices", "devices.list") == "a *:* rwm"


def test_block_io_weight_without_a_weight_file(cg: Cgroup) -> None:
    d = path(cg, "blkio")
    if (d / "blkio.weight").exists() or (d / "blkio.bfq.weight").exists():
        cg.apply({"blockIO": {"weight": 500}})
        name = "blkio.weight" if (d / "blkio.weight").exists() else "blkio.bfq.weight"
        assert (d / name).read_text().split()[-1] == "500"
        return
    with pytest.raises(ContainerError, match=r"^linux\.resources\.blockIO\.weight: proportional I/O weights are "
                                             r"not available on this host"):
        cg.apply({"blockIO": {"weight": 500}})


def test_bad_values_are_config_errors(cg: Cgroup) -> None:
    with pytest.raises(ConfigError, match=r"^linux\.resources\.unified\.a/b: must be a cgroup file name"):
        cg.apply({"unified": {"a/b": "1"}})
    with pytest.raises(ConfigError, match=r"^linux\.resources\.memory\.limit: must be an integer"):
        cg.apply({"memory": {"limit": "1G"}})
    with pytest.raises(ConfigError, match=r"^linux\.resources\.devices\[0\]\.access: "):
        cg.apply({"devices": [{"allow": True, "access": "rwx"}]})
