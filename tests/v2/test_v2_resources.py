"""Every linux.resources field pyoci maps on cgroup v2, proven with real containers in the pure-v2 guest.

The mapping is runc's (libcontainer/cgroups/fs2; compared with runc 1.1.5 in this guest, which has all of it
but cpu.burst and cpu.idle, runc 1.2's):

    memory.limit -> memory.max            memory.reservation -> memory.low
    memory.swap  -> memory.swap.max = swap - limit (OCI swap is memory+swap; -1 max; swap == limit: "0")
    cpu.shares   -> cpu.weight = 1 + ((shares - 2) * 9999) // 262142
    cpu.quota/period -> cpu.max "QUOTA PERIOD"   cpu.burst -> cpu.max.burst   cpu.idle -> cpu.idle
    pids.limit   -> pids.max              unified {FILE: VALUE} -> FILE, written last (it wins)
    blockIO.weight -> io.bfq.weight (as is) or io.weight (converted); throttle*Device -> io.max
    memory.swappiness, memory.disableOOMKiller -> a warning each (no v2 equivalent), the container runs

Each value is checked on the host side (the container's cgroup directory) right after create, i.e. before the
container's process runs anything; from inside the container by its first command (a cgroup namespace and the
bundle's cgroup mount: /sys/fs/cgroup is the container's own cgroup); after `pyoci update --resources -` and
after runc-style `pyoci update --memory ... --cpu-quota ...` flags. Then OOM, pause/resume, ps, kill --all and
delete on cgroup v2.

The guest is one slow CPU: the fields are grouped into few containers. Every container's cgroup lives below a
per-test parent (/pyoci-v2r-<hex>/...), which pyoci (or runc) creates; the `parent` fixture removes whatever a
failed test (or runc, which keeps the parents it made) left: nothing here touches a cgroup it did not make.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import Bundle, Runtime, wait_for

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024
RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
SLOW = 30  # seconds: the guest's single CPU is slow


# ----------------------------------------------------------------------------------------------- helpers
def weight(shares: int) -> int:
    """runc's cpu.shares -> cpu.weight conversion (libcontainer/cgroups.ConvertCPUSharesToCgroupV2Value)."""
    return 1 + ((shares - 2) * 9999) // 262142


@pytest.fixture(scope="module")
def cgroup_files() -> set[str]:
    """The interface files a fresh child of the root has on this kernel (a probe cgroup of our own, removed
    at once): tells whether swap accounting (memory.swap.max) or io weights exist here."""
    probe = CG / ("pyoci-v2r-probe-%s" % uuid.uuid4().hex[:8])
    probe.mkdir()
    try:
        return set(os.listdir(probe))
    finally:
        probe.rmdir()


def read(d: Path, names: list[str]) -> dict[str, str]:
    """name -> content (stripped, lines joined by ';') of cgroup files in d."""
    return {n: ";".join((d / n).read_text().split("\n")).strip(";") for n in names}


def reader_script(names: list[str], dest: str) -> str:
    """Shell that writes NAME=VALUE lines for the container's own cgroup files (and its /proc/self/cgroup) to
    dest, atomically (the host waits for the file)."""
    cats = "; ".join('printf "%s=%%s\\n" "$(cat %s | tr "\\n" ";" | sed "s/;$//")"' % (n, n) for n in names)
    return ('cd /sys/fs/cgroup && { printf "self=%%s\\n" "$(cat /proc/self/cgroup)"; %s; } > %s.tmp && mv %s.tmp %s'
            % (cats, dest, dest, dest))


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def in_cgroupns(bundle: Bundle, out: Path) -> None:
    """A cgroup namespace; the bundle's cgroup mount at /sys/fs/cgroup (added if missing); /out bound rw."""
    bundle.set_namespace("cgroup")
    if not any(m["destination"] == "/sys/fs/cgroup" for m in bundle.config["mounts"]):
        bundle.add_mount("/sys/fs/cgroup", type="cgroup", source="cgroup", options=["nosuid", "noexec", "nodev", "ro"])
    out.mkdir(exist_ok=True)
    bundle.bind(out, "/out")


def comms(d: Path) -> list[str]:
    """The command names of the processes in cgroup d, sorted."""
    out = []
    for pid in (d / "cgroup.procs").read_text().split():
        try:
            out.append(Path("/proc/%s/comm" % pid).read_text().strip())
        except OSError:
            out.append("?")
    return sorted(out)


def wait_file(path: Path) -> str:
    wait_for(path.exists, SLOW, interval=0.05, what=str(path))
    return path.read_text()


class Runc(Runtime):
    """runc with a private --root, through the same plumbing as pyoci (output to files, never pipes: a created
    container inherits them)."""

    def argv(self, *args: Any, root: bool = True) -> list[str]:
        assert RUNC
        return [RUNC, "--root", str(self.root), *map(str, args)]


def update(rt: Runtime, cid: str, resources: dict[str, Any]) -> None:
    rt.ok("update", "--resources", "-", cid, input=json.dumps(resources))


# ----------------------------------------------------------------------------------------------- memory cpu pids
def test_memory_cpu_pids_unified_at_create_inside_and_after_updates(rt: Runtime, bundle: Bundle, parent: str,
                                                                     tmp_path: Path, cgroup_files: set[str]) -> None:
    swap = "memory.swap.max" in cgroup_files  # no swap accounting: the swap fields are left out
    files = ["memory.max", "memory.low", "memory.high", "pids.max", "cpu.weight", "cpu.max", "cpu.max.burst",
             "cpu.idle"] + (["memory.swap.max"] if swap else [])
    cid = rt.new_id()
    bundle.linux["cgroupsPath"] = "/%s/%s" % (parent, cid)
    memory: dict[str, Any] = {"limit": 64 * MiB, "reservation": 32 * MiB, "swappiness": 60, "disableOOMKiller": True}
    if swap:
        memory["swap"] = 96 * MiB
    bundle.linux["resources"].update({
        "memory": memory,
        "cpu": {"shares": 1024, "quota": 25000, "period": 50000, "burst": 10000},
        "pids": {"limit": 40},
        "unified": {"memory.high": str(48 * MiB)},
    })
    out = tmp_path / "out"
    in_cgroupns(bundle, out)
    bundle.sh(reader_script(files, "/out/first") + "; exec sleep 300")
    want = {"memory.max": str(64 * MiB), "memory.low": str(32 * MiB), "memory.high": str(48 * MiB),
            "pids.max": "40", "cpu.weight": str(weight(1024)), "cpu.max": "25000 50000", "cpu.max.burst": "10000",
            "cpu.idle": "0"}
    if swap:
        want["memory.swap.max"] = str(32 * MiB)  # 96 MiB of memory+swap over a 64 MiB limit
    d = CG / parent / cid
    bundle.save()
    r = rt.ok("create", "--bundle", bundle.path, cid)
    try:
        # swappiness and disableOOMKiller have no v2 file: a warning each, and the container is created
        warnings = [line for line in r.stderr.splitlines() if "level=warning" in line]
        assert any("memory.swappiness" in w for w in warnings), r.stderr
        assert any("memory.disableOOMKiller" in w for w in warnings), r.stderr
        assert weight(1024) == 39
        assert read(d, files) == want, "host side after create"  # before the process ran anything
        rt.ok("start", cid)
        first = parse(wait_file(out / "first"))
        assert first.pop("self") == "0::/"  # its own cgroup is the root it sees
        assert first == want, "inside, the process's first command"

        # update --resources - (JSON on stdin): every field at once; unified is written last and wins
        resources: dict[str, Any] = {
            "memory": {"limit": 48 * MiB, "reservation": 16 * MiB},
            "cpu": {"shares": 2048, "quota": 30000, "period": 60000, "burst": 5000},
            "pids": {"limit": 30},
            "unified": {"memory.high": str(40 * MiB), "pids.max": "25"},
        }
        if swap:
            resources["memory"]["swap"] = -1
        update(rt, cid, resources)
        want.update({"memory.max": str(48 * MiB), "memory.low": str(16 * MiB), "memory.high": str(40 * MiB),
                     "pids.max": "25", "cpu.weight": str(weight(2048)), "cpu.max": "30000 60000",
                     "cpu.max.burst": "5000"})
        if swap:
            want["memory.swap.max"] = "max"  # -1
        assert weight(2048) == 79
        assert read(d, files) == want, "host side after update --resources"

        # runc's update flags
        flags = ["--memory", "40m", "--memory-reservation", "20m", "--pids-limit", "9", "--cpu-share", "512",
                 "--cpu-quota", "20000", "--cpu-period", "40000"]
        if swap:
            flags += ["--memory-swap", "60m"]
        rt.ok("update", *flags, cid)
        want.update({"memory.max": str(40 * MiB), "memory.low": str(20 * MiB), "pids.max": "9",
                     "cpu.weight": str(weight(512)), "cpu.max": "20000 40000"})
        if swap:
            want["memory.swap.max"] = str(20 * MiB)  # 60m - 40m
        assert read(d, files) == want, "host side after update flags"

        # memory+swap == memory: no swap at all ("0"); cpu.idle (the kernel then reports an idle group's weight:
        # 0 on Linux 6.1, the minimum, 1, on 7.2); pids -1
        resources = {"cpu": {"idle": 1}, "memory": {"limit": 40 * MiB}, "pids": {"limit": -1}}
        if swap:
            resources["memory"]["swap"] = 40 * MiB
            want["memory.swap.max"] = "0"
        update(rt, cid, resources)
        want.update({"cpu.idle": "1", "pids.max": "max"})
        got = read(d, files)
        assert got["cpu.weight"] in ("0", "1"), "an idle group's weight"
        want["cpu.weight"] = got["cpu.weight"]
        assert got == want, "host side after the idle/no-swap update"
        if swap:  # memory+swap below memory: refused, naming the field, nothing changed
            err = rt.fail("update", "--resources", "-", cid,
                          input=json.dumps({"memory": {"limit": 40 * MiB, "swap": 20 * MiB}}))
            assert "linux.resources.memory.swap" in err, err
            assert read(d, files) == want

        # and the container sees the same (exec joins its cgroup namespace)
        inside = parse(rt.ok("exec", cid, "sh", "-c", reader_script(files, "/out/last") + "; cat /out/last").stdout)
        assert inside.pop("self") == "0::/"
        assert inside == want, "inside, after the updates"
    finally:
        rt.delete(cid)
    assert not (CG / parent).exists()


def test_update_of_one_cpu_bandwidth_value_keeps_the_other(rt: Runtime, bundle: Bundle, parent: str,
                                                           tmp_path: Path) -> None:
    """`update --cpu-quota Q` alone keeps the period and `--cpu-period P` alone keeps the quota, as runc does
    (runc 1.1.5 in this guest: 25000 50000 -> --cpu-quota 30000 -> "30000 50000" -> --cpu-period 80000 ->
    "30000 80000"; the same with --resources - JSON). Where runc is installed the same steps run on a runc
    container too and both must agree."""
    steps: list[tuple[str, list[str], str | None]] = [
        ("--cpu-quota alone", ["--cpu-quota", "30000"], None),
        ("--cpu-period alone", ["--cpu-period", "80000"], None),
        ("JSON quota alone", [], json.dumps({"cpu": {"quota": 40000}})),
        ("JSON period alone", [], json.dumps({"cpu": {"period": 70000}})),
    ]
    expected = ["25000 50000", "30000 50000", "30000 80000", "40000 80000", "40000 70000"]
    bundle.linux["resources"]["cpu"] = {"quota": 25000, "period": 50000}
    bundle.args("sleep", "300")

    def walk(cmd: Any, cid: str, d: Path) -> list[str]:
        seen = [(d / "cpu.max").read_text().strip()]
        for _what, flags, data in steps:
            if data is None:
                cmd("update", *flags, cid)
            else:
                cmd("update", "--resources", "-", cid, input=data)
            seen.append((d / "cpu.max").read_text().strip())
        return seen

    got: dict[str, list[str]] = {}
    if RUNC:
        rb = Bundle(tmp_path / "runc-bundle", bundle.shared_rootfs)
        rb.config = json.loads(json.dumps(bundle.config))
        rb.linux["cgroupsPath"] = "/%s/runc" % parent
        rb.save()
        runc = Runc(tmp_path / "runc-root", tmp_path)
        rid = "runc" + uuid.uuid4().hex[:8]
        runc.ok("create", "--bundle", rb.path, rid)
        try:
            got["runc"] = walk(runc.ok, rid, CG / parent / "runc")
        finally:
            runc.cmd("delete", "--force", rid)
        wait_for(lambda: not (CG / parent / "runc").exists(), SLOW, what="runc's cgroup removed")
        # runc leaves the parent it made; pyoci's container below it then leaves it too (the fixture removes it)
    cid = rt.new_id()
    bundle.linux["cgroupsPath"] = "/%s/%s" % (parent, cid)
    with rt.container(bundle, cid=cid):
        got["pyoci"] = walk(rt.ok, cid, CG / parent / cid)
    if RUNC:
        assert got["runc"] == expected, got
    labels = ["create"] + [s[0] for s in steps]
    assert list(zip(labels, got["pyoci"])) == list(zip(labels, expected)), got


# ----------------------------------------------------------------------------------------------- block I/O
@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[str]:
    """MAJOR:MINOR of a loop device of our own over an 8 MiB file (a real block device for io.max)."""
    loaded = Path("/sys/module/loop").exists()
    subprocess.run(["modprobe", "-q", "loop"], capture_output=True)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 * MiB)
    r = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("no loop device in this guest (losetup: %s): the throttles are checked by the error case only"
                    % r.stderr.strip())
    dev = r.stdout.strip()
    try:
        yield (Path("/sys/class/block") / Path(dev).name / "dev").read_text().strip()
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
        if not loaded:
            subprocess.run(["modprobe", "-r", "-q", "loop"], capture_output=True)


def test_block_io_throttles_on_a_real_device_and_weight(rt: Runtime, bundle: Bundle, parent: str, tmp_path: Path,
                                                        loop_device: str, cgroup_files: set[str]) -> None:
    """throttle{Read,Write}{Bps,IOPS}Device -> one io.max line for the device; blockIO.weight -> io.bfq.weight
    or io.weight where this kernel has one, else (this guest: no iocost, no BFQ group scheduling) an error
    naming the field, as runc fails too."""
    major, minor = map(int, loop_device.split(":"))
    dev = {"major": major, "minor": minor}
    cid = rt.new_id()
    bundle.linux["cgroupsPath"] = "/%s/%s" % (parent, cid)
    bundle.linux["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [dict(dev, rate=1 * MiB)], "throttleWriteBpsDevice": [dict(dev, rate=2 * MiB)],
        "throttleReadIOPSDevice": [dict(dev, rate=100)], "throttleWriteIOPSDevice": [dict(dev, rate=200)]}
    out = tmp_path / "out"
    in_cgroupns(bundle, out)
    bundle.sh(reader_script(["io.max"], "/out/first") + "; exec sleep 300")
    line = "%s rbps=%d wbps=%d riops=100 wiops=200" % (loop_device, MiB, 2 * MiB)
    d = CG / parent / cid
    with rt.container(bundle, cid=cid):
        assert (d / "io.max").read_text().strip() == line
        rt.ok("start", cid)
        assert parse(wait_file(out / "first"))["io.max"] == line
        update(rt, cid, {"blockIO": {"throttleReadBpsDevice": [dict(dev, rate=4 * MiB)]}})
        line = "%s rbps=%d wbps=%d riops=100 wiops=200" % (loop_device, 4 * MiB, 2 * MiB)
        assert (d / "io.max").read_text().strip() == line
        assert rt.ok("exec", cid, "cat", "/sys/fs/cgroup/io.max").stdout.strip() == line

        # blockIO.weight, by the runc flag
        if "io.bfq.weight" in cgroup_files:
            rt.ok("update", "--blkio-weight", "300", cid)
            assert (d / "io.bfq.weight").read_text().split()[-1] == "300"
        elif "io.weight" in cgroup_files:
            rt.ok("update", "--blkio-weight", "300", cid)
            assert (d / "io.weight").read_text().split()[-1] == str(1 + ((300 - 10) * 9999) // 990)
        else:
            err = rt.fail("update", "--blkio-weight", "300", cid)
            assert "linux.resources.blockIO.weight" in err and "io.weight" in err, err
        assert (d / "io.max").read_text().strip() == line


def test_block_io_errors_name_the_field(rt: Runtime, bundle: Bundle, parent: str, cgroup_files: set[str]) -> None:
    """A throttle on a device that is not a block device here, and (where the kernel has no io weight file) a
    weight: create fails with one line naming the field, and leaves no cgroup behind."""
    assert not Path("/sys/dev/block/240:999").exists()
    bundle.linux["cgroupsPath"] = "/%s/throttle" % parent
    bundle.linux["resources"]["blockIO"] = {"throttleWriteIOPSDevice": [{"major": 240, "minor": 999, "rate": 10}]}
    err = rt.refuse(bundle)
    assert "linux.resources.blockIO.throttleWriteIOPSDevice[0]" in err and "io.max" in err, err
    assert not (CG / parent).exists()
    if "io.weight" in cgroup_files or "io.bfq.weight" in cgroup_files:
        return
    bundle.linux["resources"]["blockIO"] = {"weight": 500}
    err = rt.refuse(bundle)
    assert "linux.resources.blockIO.weight" in err and "io.weight" in err, err
    assert not (CG / parent).exists()


# ----------------------------------------------------------------------------------------------- OOM
def test_oom_kill(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """16 MiB of memory (and no swap: memory+swap == memory), dd reading 32 MiB into one buffer: the kernel's
    OOM killer takes it; `run` exits 137 (128+SIGKILL), the container is stopped, memory.events counts it."""
    cid = rt.new_id()
    bundle.linux["cgroupsPath"] = "/%s/%s" % (parent, cid)
    bundle.linux["resources"]["memory"] = {"limit": 16 * MiB, "swap": 16 * MiB}
    bundle.args("dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1")
    r = rt.run(bundle, cid, "--keep", timeout=120)
    try:
        assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
        assert rt.status(cid) == "stopped"
        events = dict(line.split() for line in (CG / parent / cid / "memory.events").read_text().splitlines())
        assert int(events["oom_kill"]) >= 1, events
        assert (CG / parent / cid / "memory.max").read_text().strip() == str(16 * MiB)
    finally:
        rt.delete(cid)
    assert not (CG / parent).exists()


# ----------------------------------------------------------------------------------------------- lifecycle
def test_idle_pause_ps_kill_all_and_delete_of_nested_levels(rt: Runtime, bundle: Bundle, parent: str,
                                                             tmp_path: Path) -> None:
    """cgroupsPath /<parent>/a/b/c with cpu.idle 1 (at create, seen by the first command); ps lists what
    cgroup.procs holds; pause/resume through cgroup.freeze (cgroup.events frozen 1/0, state paused/running);
    kill --all empties the cgroup (no pid namespace: the children would outlive the init); delete removes c and
    every level pyoci created (b, a, the parent)."""
    bundle.linux["cgroupsPath"] = "/%s/a/b/c" % parent
    bundle.linux["resources"]["cpu"] = {"idle": 1}
    bundle.drop_namespace("pid")
    out = tmp_path / "out"
    in_cgroupns(bundle, out)
    bundle.sh(reader_script(["cpu.idle"], "/out/first") + "; sleep 300 & sleep 300 & wait")
    d = CG / parent / "a" / "b" / "c"
    with rt.container(bundle) as cid:
        assert (d / "cpu.idle").read_text().strip() == "1"
        rt.ok("start", cid)
        first = parse(wait_file(out / "first"))
        assert (first["self"], first["cpu.idle"]) == ("0::/", "1")
        wait_for(lambda: comms(d) == ["sh", "sleep", "sleep"], SLOW, what="init and two sleeps, nothing else")
        procs = sorted(int(p) for p in (d / "cgroup.procs").read_text().split())
        assert rt.state(cid)["pid"] in procs
        assert sorted(json.loads(rt.ok("ps", "--format", "json", cid).stdout)) == procs
        # the table form with ps(1) arguments (the default -ef fails in this guest on its own: procps' ps
        # cannot compute STIME under user-mode Linux, "Unable to get system boot time")
        table = rt.ok("ps", cid, "-o", "pid,comm").stdout.splitlines()
        assert table[0].split() == ["PID", "COMMAND"], table
        assert sorted((int(row.split()[0]), row.split()[1]) for row in table[1:]) == sorted(
            (p, Path("/proc/%d/comm" % p).read_text().strip()) for p in procs), table

        rt.ok("pause", cid)
        assert (d / "cgroup.freeze").read_text().strip() == "1"
        assert "frozen 1" in (d / "cgroup.events").read_text().splitlines()
        assert rt.status(cid) == "paused"
        rt.ok("resume", cid)
        assert (d / "cgroup.freeze").read_text().strip() == "0"
        assert "frozen 0" in (d / "cgroup.events").read_text().splitlines()
        assert rt.status(cid) == "running"

        rt.ok("kill", "--all", cid, "KILL")
        wait_for(lambda: not (d / "cgroup.procs").read_text().strip(), SLOW, what="an empty cgroup")
        rt.wait_status(cid, "stopped", SLOW)
        assert d.is_dir()
        rt.delete(cid)
        assert not (CG / parent).exists(), sorted(str(p) for p in (CG / parent).rglob("*"))

