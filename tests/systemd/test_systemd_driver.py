"""The systemd cgroup driver itself (``pyoci --systemd-cgroup``), with real containers on the systemd guest.

Each container's cgroup is a transient unit of the guest's systemd (PID 1): checked with systemctl (the unit,
its properties), the cgroup files, /proc/PID/cgroup; after update, pause, exec, kill --all; and after delete,
nothing of it: no unit (LoadState not-found, not in `systemctl list-units --all`), no cgroup, no state. Units
are named after the test's unique ids (``pyoci-t-<id>.scope``, slices ``pyoci<hex>-...``); a test that fails
half-way has its units stopped by the ``units`` fixture, so nothing leaks into the next test.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Bundle, Runtime, wait_for
from v2.test_v2_resources import in_cgroupns

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024
SLOW = 60  # seconds: one slow CPU


def show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, "-p", ",".join(props)], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def listed(unit: str) -> bool:
    out = subprocess.run(["systemctl", "list-units", "--all", "--no-legend", "--plain", unit], capture_output=True,
                         text=True).stdout
    return unit in out


def gone(unit: str) -> bool:
    return show(unit, "LoadState")["LoadState"] == "not-found" and not listed(unit)


class Units:
    """Units a test makes (directly or as the parent slices systemd makes for them): stopped at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, *names: str) -> None:
        self.names.extend(names)

    def cleanup(self) -> list[str]:
        left = [u for u in self.names if not gone(u)]
        for u in reversed(self.names):
            subprocess.run(["systemctl", "stop", u], capture_output=True)
            subprocess.run(["systemctl", "reset-failed", u], capture_output=True)
        return left


@pytest.fixture
def units() -> Iterator[Units]:
    u = Units()
    yield u
    u.cleanup()


def systemd_create(rt: Runtime, bundle: Bundle, cid: str, *extra: str) -> None:
    bundle.save()
    rt.ok("--systemd-cgroup", "create", "--bundle", bundle.path, *extra, cid)


def cgroup_of(pid: int) -> str:
    return next(line[3:] for line in Path("/proc/%d/cgroup" % pid).read_text().splitlines() if line.startswith("0::"))


# ---------------------------------------------------------------------------------------------- the unit
def test_unit_properties_files_update_pause_exec_and_delete(rt: Runtime, bundle: Bundle, units: Units,
                                                             tmp_path: Path) -> None:
    cid = rt.new_id()
    unit = "pyoci-t-%s.scope" % cid
    units.add(unit)
    bundle.linux["cgroupsPath"] = "system.slice:pyoci-t:%s" % cid
    bundle.linux["resources"].update({
        "memory": {"limit": 32 * MiB, "reservation": 8 * MiB},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "pids": {"limit": 20},
        "unified": {"memory.high": str(24 * MiB)},
    })
    bundle.config.setdefault("annotations", {}).update({
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
    })
    out = tmp_path / "out"
    in_cgroupns(bundle, out)
    bundle.sh("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /proc/self/cgroup > /out/inside.tmp && "
              "mv /out/inside.tmp /out/inside; exec sleep 300")
    systemd_create(rt, bundle, cid)
    try:
        pid = rt.state(cid)["pid"]
        d = CG / "system.slice" / unit
        assert cgroup_of(pid) == "/system.slice/" + unit  # the init lives in the unit's cgroup
        p = show(unit, "ActiveState", "Slice", "Delegate", "DefaultDependencies", "MemoryMax", "MemoryLow",
                 "MemoryHigh", "TasksMax", "CPUWeight", "CPUQuotaPerSecUSec", "TimeoutStopUSec", "CollectMode",
                 "Description", "ControlGroup", "MemoryAccounting", "TasksAccounting")
        assert p["ActiveState"] == "active" and p["Slice"] == "system.slice" and p["Delegate"] == "yes"
        assert p["DefaultDependencies"] == "no" and p["ControlGroup"] == "/system.slice/" + unit
        assert p["MemoryMax"] == str(32 * MiB) and p["MemoryLow"] == str(8 * MiB)
        assert p["MemoryHigh"] == str(24 * MiB)
        assert p["TasksMax"] == "20" and p["CPUWeight"] == "39" and p["CPUQuotaPerSecUSec"] == "500ms"
        assert p["TimeoutStopUSec"] == "2min 3.456789s" and p["CollectMode"] == "inactive-or-failed"
        assert p["MemoryAccounting"] == "yes" and p["TasksAccounting"] == "yes" and cid in p["Description"]
        files = {n: (d / n).read_text().strip() for n in ("memory.max", "memory.low", "memory.high", "pids.max",
                                                          "cpu.weight", "cpu.max")}
        assert files == {"memory.max": str(32 * MiB), "memory.low": str(8 * MiB), "memory.high": str(24 * MiB),
                         "pids.max": "20", "cpu.weight": "39", "cpu.max": "50000 100000"}
        from pyoci.cgroups import devices

        assert devices.attached(str(d)), "the eBPF device filter is attached to the unit's cgroup"

        rt.ok("start", cid)
        wait_for((out / "inside").exists, SLOW, interval=0.05, what="the container's first command")
        assert (out / "inside").read_text().split() == [str(32 * MiB), "20", "0::/"]  # its own cgroup, mounted

        # update: the unit's properties and the files
        rt.ok("update", "--memory", "64m", "--pids-limit", "30", "--cpu-quota", "25000", cid)
        p = show(unit, "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec")
        assert p == {"MemoryMax": str(64 * MiB), "TasksMax": "30", "CPUQuotaPerSecUSec": "250ms"}
        assert (d / "memory.max").read_text().strip() == str(64 * MiB)
        assert (d / "pids.max").read_text().strip() == "30"
        assert (d / "cpu.max").read_text().strip() == "25000 100000"

        # exec joins the unit's cgroup; ps lists both; pause/resume freeze it
        r = rt.ok("exec", cid, "cat", "/proc/self/cgroup")
        assert r.stdout.strip() == "0::/"
        rt.ok("pause", cid)
        assert rt.status(cid) == "paused" and "frozen 1" in (d / "cgroup.events").read_text()
        rt.ok("resume", cid)
        assert rt.status(cid) == "running"
        assert pid in json.loads(rt.ok("ps", "--format", "json", cid).stdout)
        rt.ok("kill", "--all", cid, "KILL")
        rt.wait_status(cid, "stopped", SLOW)
    finally:
        rt.cmd("delete", "--force", cid)
    assert gone(unit)  # delete waits for systemd to stop it
    assert not d.exists()


def test_defaults_when_the_path_is_empty_and_a_stopped_container(rt: Runtime, bundle: Bundle, units: Units) -> None:
    """No cgroupsPath: system.slice, pyoci-<id>.scope. An init that exits takes the scope with it (systemd
    stops an empty scope); state says stopped, delete succeeds and leaves nothing."""
    cid = rt.new_id()
    unit = "pyoci-%s.scope" % cid
    units.add(unit)
    bundle.linux.pop("cgroupsPath", None)
    bundle.args("sh", "-c", "read x")  # exits when start's stdin (/dev/null) is read
    systemd_create(rt, bundle, cid)
    try:
        assert cgroup_of(rt.state(cid)["pid"]) == "/system.slice/" + unit
        assert show(unit, "ActiveState")["ActiveState"] == "active"
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped", SLOW)
        wait_for(lambda: show(unit, "ActiveState")["ActiveState"] != "active", SLOW, what="the scope to stop")
    finally:
        rt.ok("delete", cid)
    assert gone(unit)
    assert not (CG / "system.slice" / unit).exists()


def test_nested_slices_and_a_slice_as_the_container(rt: Runtime, bundle: Bundle, units: Units) -> None:
    """a-b.slice lives in a.slice/; a name ending in .slice is itself the unit (a slice)."""
    tag = "pyoci%s" % uuid.uuid4().hex[:8]
    cid = rt.new_id()
    scope = "x-%s.scope" % cid
    units.add("%s.slice" % tag, "%s-a.slice" % tag, "%s-a-b.slice" % tag, scope)
    bundle.linux["cgroupsPath"] = "%s-a-b.slice:x:%s" % (tag, cid)
    bundle.args("sleep", "300")
    systemd_create(rt, bundle, cid)
    try:
        want = "/%s.slice/%s-a.slice/%s-a-b.slice/%s" % (tag, tag, tag, scope)
        assert cgroup_of(rt.state(cid)["pid"]) == want
        assert show(scope, "Slice")["Slice"] == "%s-a-b.slice" % tag
    finally:
        rt.ok("delete", "--force", cid)
    assert gone(scope)

    cid2 = rt.new_id()
    slice_unit = "%s-c%s.slice" % (tag, cid2)
    units.add(slice_unit)
    bundle.linux["cgroupsPath"] = "%s.slice:ignored:%s" % (tag, slice_unit)
    systemd_create(rt, bundle, cid2)
    try:
        assert cgroup_of(rt.state(cid2)["pid"]) == "/%s.slice/%s" % (tag, slice_unit)
        assert show(slice_unit, "ActiveState")["ActiveState"] == "active"
    finally:
        rt.ok("delete", "--force", cid2)
    # stopped by delete, its cgroup gone; systemd 252 keeps a stopped transient slice loaded (inactive) for a
    # while, so that one is not asserted unloaded (scopes are, at once)
    assert show(slice_unit, "ActiveState")["ActiveState"] == "inactive"
    assert not (CG / ("%s.slice" % tag) / slice_unit).exists()


def test_devices_by_the_unit_and_the_filter(rt: Runtime, bundle: Bundle, units: Units) -> None:
    """Docker's rules: DevicePolicy strict with systemd's names for them; mknod of a block device works, opening
    it does not; /dev/null does."""
    cid = rt.new_id()
    unit = "pyoci-t-%s.scope" % cid
    units.add(unit)
    bundle.linux["cgroupsPath"] = "system.slice:pyoci-t:%s" % cid
    bundle.linux["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": True, "type": "b", "access": "m"}, {"allow": True, "type": "c", "access": "m"}]
    bundle.process["capabilities"] = {k: ["CAP_MKNOD", "CAP_DAC_OVERRIDE"] for k in
                                      ("bounding", "effective", "permitted")}
    bundle.sh("mknod /tmp/blk b 7 0 && echo made; head -c1 /tmp/blk && echo OPENED; echo x > /dev/null && echo null")
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "mode=1777"]})  # nodev would refuse the open itself
    bundle.save()
    r = rt.cmd("--systemd-cgroup", "run", "--bundle", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert "made" in r.stdout and "OPENED" not in r.stdout and "null" in r.stdout
    assert "Operation not permitted" in r.stderr
    assert gone(unit)


def test_bad_paths_and_annotations_are_one_line_errors(rt: Runtime, bundle: Bundle) -> None:
    for path, words in (("/a/b", "slice:prefix:name"), ("nope:x:y", "not a systemd slice name"),
                        ("system.slice:x:a b", "not a valid systemd unit name")):
        bundle.linux["cgroupsPath"] = path
        bundle.save()
        err = rt.fail("--systemd-cgroup", "create", "--bundle", bundle.path, rt.new_id())
        assert "linux.cgroupsPath" in err and words in err, err
    bundle.linux["cgroupsPath"] = "system.slice:x:%s" % uuid.uuid4().hex[:8]
    bundle.config["annotations"] = {"org.systemd.property.CollectMode": "inactive"}
    bundle.save()
    err = rt.fail("--systemd-cgroup", "create", "--bundle", bundle.path, rt.new_id())
    assert "org.systemd.property.CollectMode" in err and "GVariant" in err, err
    # a property systemd refuses: its own words, and nothing left
    cid = rt.new_id()
    bundle.linux["cgroupsPath"] = "system.slice:pyoci-t:%s" % cid
    bundle.config["annotations"] = {"org.systemd.property.NoSuchThing": "true"}
    bundle.save()
    err = rt.fail("--systemd-cgroup", "create", "--bundle", bundle.path, cid)
    assert "pyoci-t-%s.scope" % cid in err, err
    assert gone("pyoci-t-%s.scope" % cid)


def test_the_cgroup_of_a_busy_unit_is_refused(rt: Runtime, bundle: Bundle, units: Units) -> None:
    """A unit of that name with processes (another container, a service): refused, and left alone."""
    tag = uuid.uuid4().hex[:8]
    unit = "busy-%s.scope" % tag
    units.add(unit)
    sleeper = subprocess.Popen(["systemd-run", "--scope", "--unit", unit, "--slice", "system.slice", "sleep", "300"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: show(unit, "ActiveState")["ActiveState"] == "active", SLOW, what="the other scope")
        bundle.linux["cgroupsPath"] = "system.slice:busy:%s" % tag
        bundle.save()
        err = rt.fail("--systemd-cgroup", "create", "--bundle", bundle.path, rt.new_id())
        assert "already has processes" in err, err
        assert show(unit, "ActiveState")["ActiveState"] == "active"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_killed_runtime_then_delete_force_leaves_no_unit(rt: Runtime, bundle: Bundle, units: Units) -> None:
    """create and delete SIGKILLed at random instants, then delete --force (what an engine does): no unit, no
    cgroup, no state remain."""
    bundle.args("sleep", "300")
    rng = random.Random(10)
    t = time.monotonic()
    cid = rt.new_id()
    units.add("pyoci-%s.scope" % cid)
    systemd_create(rt, bundle, cid)
    took = time.monotonic() - t
    rt.ok("delete", "--force", cid)
    problems = []
    for n in range(8):
        cid = rt.new_id()
        unit = "pyoci-%s.scope" % cid
        units.add(unit)
        p = subprocess.Popen(rt.argv("--systemd-cgroup", "create", "--bundle", bundle.path, cid),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0) * took)
        p.send_signal(signal.SIGKILL)
        p.wait()
        r = rt.cmd("delete", "--force", cid)
        if r.returncode != 0:
            problems.append("%d: delete --force: %s" % (n, r.stderr.strip()))
        elif not gone(unit):  # delete --force waits for systemd's stop job
            problems.append("%d: unit %s left" % (n, unit))
        if (CG / "system.slice" / unit).exists() or (rt.root / cid).exists():
            problems.append("%d: cgroup or state left" % n)
    assert not problems, problems
    assert os.path.isdir("/run/systemd/system")
