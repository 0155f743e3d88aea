"""Namespaces: new ones of every kind, joining existing ones by path, user id maps, time offsets."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Bundle, Runtime, bare_procfs_probe, bare_procfs_refused, pid_alive

PROC = {"pid": "pid", "uts": "uts", "ipc": "ipc", "network": "net", "mount": "mnt", "cgroup": "cgroup",
        "time": "time", "user": "user"}


def _inside_ns(rt: Runtime, bundle: Bundle) -> dict[str, str]:
    out = rt.sh(bundle, "for n in %s; do echo $n $(readlink /proc/self/ns/$n); done" % " ".join(PROC.values()))
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("kind", ["pid", "uts", "ipc", "network", "cgroup"])
def test_namespace_is_new_only_when_asked(rt: Runtime, bundle: Bundle, kind: str) -> None:
    host = os.readlink("/proc/self/ns/%s" % PROC[kind])
    bundle.set_namespace(kind)
    assert _inside_ns(rt, bundle)[PROC[kind]] != host
    bundle.drop_namespace(kind)
    if kind == "uts":
        bundle.config.pop("hostname", None)
    if kind == "network":  # a new sysfs needs a new netns; bind the host's instead
        bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/sys"
                                   and m["destination"] != "/sys/fs/cgroup"]
    assert _inside_ns(rt, bundle)[PROC[kind]] == host


def test_mount_namespace_is_new(rt: Runtime, bundle: Bundle) -> None:
    assert _inside_ns(rt, bundle)["mnt"] != os.readlink("/proc/self/ns/mnt")


def test_pid_namespace_makes_the_process_pid_1(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "echo $$; echo /proc/[0-9]*")
    pid, *procs = out.split()
    assert pid == "1"
    pids = sorted(int(p.rsplit("/", 1)[1]) for p in procs)
    assert pids[0] == 1 and pids[-1] < 10, pids  # only the container's own processes


def test_uts_hostname_and_domainname(rt: Runtime, bundle: Bundle) -> None:
    before = socket.gethostname()
    bundle.config["hostname"] = "box-%s" % uuid.uuid4().hex[:6]
    bundle.config["domainname"] = "example.test"
    out = rt.sh(bundle, "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == [bundle.config["hostname"], "example.test"]
    assert socket.gethostname() == before


def test_network_namespace_has_only_lo(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "tail -n +3 /proc/net/dev | cut -d: -f1; ls /sys/class/net")
    names = set(out.split())
    assert names == {"lo"}


def test_ipc_namespace_isolates_sysv_ipc(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "cat /proc/sysvipc/shm | wc -l")
    assert out.strip() == "1"  # only the header line


def test_cgroup_namespace_roots_the_container_cgroup(rt: Runtime, bundle: Bundle) -> None:
    bundle.set_namespace("cgroup")
    out = rt.sh(bundle, "cat /proc/self/cgroup")
    for line in out.splitlines():
        assert line.split(":", 2)[2] == "/", out
    bundle.drop_namespace("cgroup")
    cid = rt.new_id()
    bundle.sh("cat /proc/self/cgroup")
    r = rt.run(bundle, cid)
    assert any(line.endswith("/" + cid) for line in r.stdout.splitlines()), r.stdout


# ------------------------------------------------------------------------------------------ user namespace
@pytest.fixture
def ubundle(rt: Runtime, short_tmp: Path, rootfs: Path) -> Bundle:
    """A bundle for user-namespace tests, in a directory the container's root (host uid 100000) can traverse
    (pytest's own tmp dirs are 0700)."""
    short_tmp.chmod(0o711)
    rt.watch(short_tmp)
    b = Bundle(short_tmp / "b", rootfs)
    b.path.chmod(0o711)
    return b


def _userns(bundle: Bundle, host: int = 100000, size: int = 65536) -> None:
    bundle.set_namespace("user")
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": host, "size": size}]


def test_user_namespace_maps_ids(rt: Runtime, ubundle: Bundle) -> None:
    rootfs = ubundle.private_rootfs()
    _userns(ubundle)
    out = rt.sh(ubundle, "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                        "touch /tmp/made-inside; mkdir /tmp/dir-inside")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0"] and lines[1] == ["0"]
    assert lines[2] == ["0", "100000", "65536"]
    assert lines[3] == ["0", "100000", "65536"]
    for name in ("made-inside", "dir-inside"):
        st = os.lstat(rootfs / "tmp" / name)
        assert (st.st_uid, st.st_gid) == (100000, 100000)


def test_no_pivot_in_a_user_namespace_covers_the_hosts_proc(rt: Runtime, ubundle: Bundle) -> None:
    """--no-pivot with a user namespace: the host's proc and sysfs mounts are locked there (they cannot be
    detached) and are covered with an empty tmpfs instead, so a nested `unshare -mrpf` still cannot mount a
    bare procfs (the same test without a user namespace is in test_security.py)."""
    (ubundle.private_rootfs() / "mnt").mkdir(exist_ok=True)  # made by the host: the mapped root cannot
    _userns(ubundle)
    bare_procfs_probe(ubundle)
    r = rt.run(ubundle, None, "--no-pivot")
    assert bare_procfs_refused(r), r.stdout + r.stderr


def test_user_namespace_non_root_user(rt: Runtime, ubundle: Bundle) -> None:
    ubundle.private_rootfs()
    _userns(ubundle)
    ubundle.process["user"] = {"uid": 1000, "gid": 1000}
    out = rt.sh(ubundle, "id -u; id -g; touch /tmp/f; stat -c '%u %g' /tmp/f")
    assert out.split() == ["1000", "1000", "1000", "1000"]
    st = os.lstat(ubundle.path / "rootfs" / "tmp" / "f")
    assert (st.st_uid, st.st_gid) == (101000, 101000)


def test_user_namespace_is_new(rt: Runtime, ubundle: Bundle) -> None:
    ubundle.private_rootfs(readonly=True)
    _userns(ubundle)
    assert _inside_ns(rt, ubundle)["user"] != os.readlink("/proc/self/ns/user")


def test_user_namespace_without_mappings_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.set_namespace("user")
    bundle.save()
    rt.refuse(bundle)


# ------------------------------------------------------------------------------------------ time namespace
def test_time_namespace_offsets(rt: Runtime, bundle: Bundle) -> None:
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("no time namespaces")
    bundle.set_namespace("time")
    day = 86400
    bundle.linux["timeOffsets"] = {"boottime": {"secs": 1000 * day, "nanosecs": 0},
                                   "monotonic": {"secs": 500 * day, "nanosecs": 0}}
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    out = rt.sh(bundle, "cat /proc/uptime; cat /proc/self/timens_offsets")
    lines = out.splitlines()
    inside = float(lines[0].split()[0])
    assert 1000 * day <= inside - host_uptime < 1000 * day + 60
    offsets = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert offsets["monotonic"] == 500 * day
    assert offsets["boottime"] == 1000 * day


# ------------------------------------------------------------------------------------------ joining
@pytest.fixture
def netns() -> Iterator[str]:
    if not shutil.which("ip"):
        pytest.skip("no ip(8)")
    name = "pyoci-t%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "pyocit0", "type", "veth", "peer", "name", "pyocit1"], check=True,
                       capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_join_network_namespace_by_path(rt: Runtime, bundle: Bundle, netns: str) -> None:
    path = "/var/run/netns/%s" % netns
    bundle.set_namespace("network", path)
    out = rt.sh(bundle, "tail -n +3 /proc/net/dev | cut -d: -f1; readlink /proc/self/ns/net")
    assert {"pyocit0", "pyocit1"} <= set(out.split())
    assert out.split()[-1] == "net:[%d]" % os.stat(path).st_ino


def test_join_another_containers_uts_namespace(rt: Runtime, bundle: Bundle, tmp_path: Path, rootfs: Path) -> None:
    bundle.config["hostname"] = "first-box"
    bundle.args("sleep", "30")
    with rt.container(bundle) as first:
        pid = rt.state(first)["pid"]
        assert pid_alive(pid)
        other = Bundle(tmp_path / "b2", rootfs)
        other.config.pop("hostname")
        other.set_namespace("uts", "/proc/%d/ns/uts" % pid)
        out = rt.sh(other, "hostname; readlink /proc/self/ns/uts")
        assert out.split() == ["first-box", os.readlink("/proc/%d/ns/uts" % pid)]


def test_join_missing_namespace_path_fails_cleanly(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.set_namespace("network", str(tmp_path / "no-such-ns"))
    bundle.save()
    cid = rt.new_id()
    line = rt.refuse(bundle, cid=cid)
    assert "namespaces" in line


def test_join_namespace_of_the_wrong_type_fails(rt: Runtime, bundle: Bundle) -> None:
    bundle.set_namespace("network", "/proc/self/ns/uts")  # pyoci's own uts namespace, not a netns
    bundle.save()
    rt.refuse(bundle)


def test_without_a_mount_namespace_the_container_shares_the_runtimes(rt: Runtime, bundle: Bundle) -> None:
    """config-linux.md#namespaces: a namespace type not listed is inherited; the container gets a chroot."""
    bundle.drop_namespace("mount")
    bundle.config["mounts"] = []
    bundle.linux.pop("maskedPaths", None)
    bundle.linux.pop("readonlyPaths", None)
    bundle.config["root"]["readonly"] = False
    bundle.args("ls", "/")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "bin" in r.stdout.split()


def test_without_a_mount_namespace_mounts_are_refused(rt: Runtime, bundle: Bundle) -> None:
    """runc would mount them in the host's mount namespace and leave them there."""
    bundle.drop_namespace("mount")
    bundle.save()
    line = rt.refuse(bundle)
    assert "mount namespace" in line and "mounts" in line
