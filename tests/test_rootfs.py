"""The root filesystem: root.path/readonly, mounts (types, options, order, propagation), /dev, masks, sysctl."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Bundle, Runtime


@dataclass
class MountInfo:
    mountpoint: str
    options: set[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: set[str]


def parse_mountinfo(text: str) -> dict[str, MountInfo]:
    """Last mount at each mount point wins (it is the visible one)."""
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        out[f[4]] = MountInfo(f[4], set(f[5].split(",")), f[6:], r[0], r[1], set(r[2].split(",")))
    return out


def inside_mounts(rt: Runtime, bundle: Bundle, *extra: str) -> dict[str, MountInfo]:
    bundle.args("cat", "/proc/self/mountinfo")
    r = rt.run(bundle, None, *extra)
    assert r.returncode == 0, r.stderr
    return parse_mountinfo(r.stdout)


# ------------------------------------------------------------------------------------------ root
def test_root_path_relative_to_bundle(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    rootfs = bundle.private_rootfs("my-root", readonly=True)
    (rootfs / "etc" / "marker").write_text("relative-root\n")
    bundle.args("cat", "/etc/marker")
    bundle.save()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = rt.cmd("run", "-b", bundle.path, rt.new_id(), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "relative-root\n"


def test_bundle_defaults_to_cwd(rt: Runtime, bundle: Bundle) -> None:
    bundle.private_rootfs(readonly=True)
    bundle.args("echo", "cwd-bundle")
    bundle.save()
    r = rt.cmd("run", rt.new_id(), cwd=bundle.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cwd-bundle\n"


def test_root_readonly(rt: Runtime, bundle: Bundle) -> None:
    bundle.sh("touch /should-fail 2>&1; echo rc=$?; touch /tmp/also-fails 2>/dev/null; echo rc=$?")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "Read-only file system" in r.stdout
    assert "rc=0" not in r.stdout
    assert not (bundle.shared_rootfs / "should-fail").exists()
    assert inside_mounts(rt, bundle)["/"].options >= {"ro"}


def test_root_writable(rt: Runtime, bundle: Bundle) -> None:
    rootfs = bundle.private_rootfs(readonly=False)
    rt.sh(bundle, "echo written > /made-inside")
    assert (rootfs / "made-inside").read_text() == "written\n"
    assert "rw" in inside_mounts(rt, bundle)["/"].options


# ------------------------------------------------------------------------------------------ mount types
def test_default_mount_types(rt: Runtime, bundle: Bundle) -> None:
    m = inside_mounts(rt, bundle)
    assert m["/proc"].fstype == "proc"
    assert m["/dev"].fstype == "tmpfs"
    assert m["/dev/pts"].fstype == "devpts"
    assert m["/dev/shm"].fstype == "tmpfs"
    assert m["/dev/mqueue"].fstype == "mqueue"
    assert m["/sys"].fstype == "sysfs" and "ro" in m["/sys"].options
    for opt in ("nosuid", "noexec", "nodev"):
        assert opt in m["/sys"].options
        assert opt in m["/dev/mqueue"].options
    assert {"nosuid", "noexec"} <= m["/dev/pts"].options
    assert {"newinstance", "ptmxmode=666", "mode=620", "gid=5"} & m["/dev/pts"].super_options >= {
        "ptmxmode=666", "mode=620", "gid=5"}
    cgroup = [mi for mp, mi in m.items() if mp.startswith("/sys/fs/cgroup")]
    assert cgroup and all("ro" in mi.options for mi in cgroup)


def test_tmpfs_size_and_mode(rt: Runtime, bundle: Bundle) -> None:
    bundle.add_mount("/mnt", "tmpfs", "tmpfs", ["size=2m", "mode=1750", "nosuid"])
    out = rt.sh(bundle, "stat -c %a /mnt; df -k /mnt | tail -n 1")
    mode, df = out.splitlines()
    assert mode == "1750"
    assert df.split()[1] == "2048"
    m = inside_mounts(rt, bundle)["/mnt"]
    assert m.fstype == "tmpfs" and "nosuid" in m.options


def test_mount_options_ro_nosuid_nodev_noexec(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    script = src / "script"
    script.write_text("#!/bin/sh\necho executed\n")
    script.chmod(0o755)
    bundle.bind(src, "/src", "ro", "nosuid", "nodev", "noexec")
    bundle.bind(src, "/data")  # the same directory, writable and executable
    m = inside_mounts(rt, bundle)
    assert {"ro", "nosuid", "nodev", "noexec"} <= m["/src"].options
    assert "rw" in m["/data"].options and "noexec" not in m["/data"].options
    out = rt.sh(bundle, "touch /src/x 2>&1; /src/script 2>&1; /data/script; touch /data/y && echo wrote")
    assert "Read-only file system" in out
    assert "Permission denied" in out  # noexec
    assert "executed" in out and "wrote" in out
    assert not (src / "x").exists() and (src / "y").exists()


def test_bind_of_a_file(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    f = tmp_path / "hosts"
    f.write_text("1.2.3.4 bound\n")
    bundle.add_mount("/etc/hosts", "bind", str(f), ["bind", "ro"])
    assert rt.sh(bundle, "cat /etc/hosts") == "1.2.3.4 bound\n"


def test_bind_source_relative_to_bundle(rt: Runtime, bundle: Bundle) -> None:
    (bundle.path / "rel").mkdir()
    (bundle.path / "rel" / "f").write_text("relative-source\n")
    bundle.add_mount("/mnt", "bind", "rel", ["rbind"])
    assert rt.sh(bundle, "cat /mnt/f") == "relative-source\n"


def test_mounts_happen_in_order(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("bound\n")
    # a tmpfs first, then a bind inside it: both visible
    bundle.add_mount("/mnt", "tmpfs", "tmpfs", ["size=1m"])
    bundle.bind(src, "/mnt/inner")
    assert rt.sh(bundle, "cat /mnt/inner/marker") == "bound\n"
    # the bind first, then a tmpfs over its parent: the later mount hides the earlier one
    bundle.config["mounts"] = bundle.config["mounts"][:-2]
    bundle.bind(src, "/mnt/a")
    bundle.add_mount("/mnt", "tmpfs", "tmpfs", ["size=1m"])
    assert rt.sh(bundle, "ls -A /mnt | wc -l").strip() == "0"


@pytest.fixture
def host_submount(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted below it (unmounted afterwards)."""
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "under").write_text("under the mount\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyoci-test", str(top / "sub")], check=True)
    try:
        (top / "sub" / "in-submount").write_text("submount\n")
        yield top
    finally:
        subprocess.run(["umount", str(top / "sub")], check=True)


def test_bind_versus_rbind(rt: Runtime, bundle: Bundle, host_submount: Path) -> None:
    bundle.add_mount("/mnt", "bind", str(host_submount), ["bind"])
    assert rt.sh(bundle, "ls /mnt/sub").split() == ["under"]
    bundle.config["mounts"][-1]["options"] = ["rbind"]
    assert rt.sh(bundle, "ls /mnt/sub").split() == ["in-submount"]


@pytest.mark.parametrize("prop,tag", [("shared", "shared:"), ("rshared", "shared:"), ("private", None),
                                      ("rprivate", None)])
def test_mount_propagation_option(rt: Runtime, bundle: Bundle, tmp_path: Path, prop: str, tag: str | None) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bundle.bind(src, "/mnt", prop)
    optional = inside_mounts(rt, bundle)["/mnt"].optional
    if tag:
        assert any(o.startswith(tag) for o in optional), optional
    else:
        assert not any(o.startswith(("shared:", "master:")) for o in optional), optional


def test_mount_unbindable(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bundle.bind(src, "/mnt", "unbindable")
    assert "unbindable" in inside_mounts(rt, bundle)["/mnt"].optional


@pytest.mark.parametrize("prop", ["shared", "rshared", "private", "rprivate", "slave", "rslave"])
def test_rootfs_propagation_values_work(rt: Runtime, bundle: Bundle, prop: str) -> None:
    """runc accepts every propagation value for the rootfs (pivot_root needs a non-shared parent: runc makes
    the rootfs's parent mount private)."""
    bundle.linux["rootfsPropagation"] = prop
    assert "/" in inside_mounts(rt, bundle)


@pytest.fixture
def shared_parent(tmp_path: Path) -> Iterator[Path]:
    """A host directory that is a shared mount point (as / is on systemd hosts); unmounted afterwards."""
    p = tmp_path / "P"
    p.mkdir()
    subprocess.run(["mount", "--bind", str(p), str(p)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(p)], check=True)
        yield p
    finally:
        subprocess.run(["umount", "-R", "-l", str(p)], check=True)


@pytest.mark.parametrize("prop,visible", [(None, True), ("rslave", True), ("rprivate", False), ("private", False)])
def test_rootfs_propagation_of_host_mounts(rt: Runtime, tmp_path: Path, rootfs: Path, shared_parent: Path,
                                           prop: str | None, visible: bool) -> None:
    """A mount the host makes under the rootfs after create reaches the container only with (r)slave, as with runc."""
    import shutil

    shutil.copytree(rootfs, shared_parent / "rootfs", symlinks=True)
    b = Bundle(tmp_path / "pb", rootfs)
    b.config["root"] = {"path": str(shared_parent / "rootfs"), "readonly": True}
    if prop:
        b.linux["rootfsPropagation"] = prop
    b.args("sleep", "30")
    with rt.container(b) as cid:
        pid = rt.state(cid)["pid"]
        target = shared_parent / "rootfs" / "mnt"
        subprocess.run(["mount", "-t", "tmpfs", "pyoci-host-late", str(target)], check=True)
        try:
            with open("/proc/%d/mountinfo" % pid) as f:
                seen = "pyoci-host-late" in f.read()
        finally:
            subprocess.run(["umount", str(target)], check=True)
        assert seen == visible


def test_rootfs_propagation_invalid(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["rootfsPropagation"] = "sideways"
    bundle.save()
    rt.refuse(bundle)


def test_unknown_mount_type_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.add_mount("/mnt", "nosuchfs", "none", [])
    bundle.save()
    line = rt.refuse(bundle)
    assert "/mnt" in line


# ------------------------------------------------------------------------------------------ /dev
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}


def test_default_devices(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "for d in %s; do stat -c '%%n %%F %%t %%T %%a %%u %%g' /dev/$d; done" % " ".join(DEVICES))
    for line in out.splitlines():
        name, kind1, kind2, kind3, major, minor, mode, uid, gid = line.split()
        assert f"{kind1} {kind2} {kind3}" == "character special file", line
        assert (int(major, 16), int(minor, 16)) == DEVICES[name.rsplit("/", 1)[1]], line
        assert mode == "666" and uid == "0" and gid == "0", line
    assert len(out.splitlines()) == len(DEVICES)


def test_default_devices_work(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "echo x > /dev/null; head -c 4 /dev/zero | od -An -tx1; head -c 16 /dev/urandom | wc -c; "
                        "echo x > /dev/full 2>&1 || echo full-failed")
    assert "00 00 00 00" in out and "16" in out.split() and "full-failed" in out


def test_dev_links(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done; "
                        "[ -d /dev/pts ] && echo pts-dir; [ -d /dev/shm ] && echo shm-dir; "
                        "[ -c /dev/pts/ptmx ] && echo ptmx-ok")
    links = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert links == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                     "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
    for word in ("pts-dir", "shm-dir", "ptmx-ok"):
        assert word in out.split()


def test_dev_has_nothing_else_of_the_host(rt: Runtime, bundle: Bundle) -> None:
    names = set(rt.sh(bundle, "ls -A /dev").split())
    assert names <= set(DEVICES) | {"fd", "stdin", "stdout", "stderr", "ptmx", "pts", "shm", "mqueue", "core",
                                    "console"}, names
    assert "sda" not in names and "vda" not in names and "kmsg" not in names


def test_extra_devices(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 5, "gid": 6},
        {"path": "/dev/sub/myloop", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600},
        {"path": "/dev/myfifo", "type": "p"},
        {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    ]
    out = rt.sh(bundle, "stat -c '%F %t %T %a %u %g' /dev/mynull /dev/sub/myloop; stat -c %F /dev/myfifo; "
                        "head -c 2 /dev/myzero | od -An -tx1")
    lines = out.splitlines()
    assert lines[0] == "character special file 1 3 640 5 6"
    assert lines[1] == "block special file 7 0 600 0 0"
    assert lines[2] == "fifo"
    assert lines[3].split() == ["00", "00"]


def test_extra_device_outside_dev_refused(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["devices"] = [{"path": "/etc/evil", "type": "c", "major": 1, "minor": 3}]
    bundle.save()
    rt.refuse(bundle)


def test_dev_bind_from_host_skips_device_setup(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    devdir = tmp_path / "devdir"
    devdir.mkdir()
    (devdir / "only-this").write_text("")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.bind(devdir, "/dev")
    assert rt.sh(bundle, "ls -A /dev").split() == ["only-this"]


# ------------------------------------------------------------------------------------------ pivot, masks, sysctl
def test_no_pivot(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    (tmp_path / "host-marker").write_text("")
    bundle.sh("ls /bin/busybox && hostname && cat /proc/self/mountinfo | wc -l && "
              "ls / && find / -xdev -name host-marker 2>/dev/null | wc -l")
    r = rt.run(bundle, None, "--no-pivot")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "/bin/busybox" and lines[1] == "pyoci"
    assert lines[-1] == "0"


def test_no_pivot_with_create_and_start(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle, "--no-pivot") as cid:
        rt.ok("start", cid)
        assert rt.status(cid) == "running"


def test_old_root_is_gone(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """After pivot_root the host's root is detached: no mount of the host's / remains."""
    m = inside_mounts(rt, bundle)
    assert set(m) <= {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"} | {
        mp for mp in m if mp.startswith(("/sys/fs/cgroup", "/proc/", "/sys/"))}, sorted(m)


def test_masked_paths_default(rt: Runtime, bundle: Bundle) -> None:
    masked_files = [f for f in ("/proc/keys", "/proc/timer_list", "/proc/kcore", "/proc/sched_debug")
                    if os.path.exists(f)]
    assert masked_files
    with open(masked_files[0]) as f:
        assert f.read(1), "the host's file is not empty"
    out = rt.sh(bundle, "ls -A /sys/firmware | wc -l; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 || true; "
                        "for f in %s; do cat $f | wc -c; done" % " ".join(masked_files))
    lines = out.splitlines()
    assert lines[0].strip() == "0"
    assert "Read-only file system" in lines[1]
    assert [x.strip() for x in lines[2:]] == ["0"] * len(masked_files)


def test_masked_and_readonly_paths_custom(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    src = tmp_path / "data"
    (src / "secret-dir").mkdir(parents=True)
    (src / "secret-dir" / "f").write_text("hidden\n")
    (src / "secret-file").write_text("hidden\n")
    (src / "ro").mkdir()
    bundle.bind(src, "/data")
    bundle.linux["maskedPaths"] = ["/data/secret-dir", "/data/secret-file", "/data/missing"]
    bundle.linux["readonlyPaths"] = ["/data/ro", "/data/also-missing"]
    out = rt.sh(bundle, "ls -A /data/secret-dir | wc -l; wc -c < /data/secret-file; touch /data/ro/x 2>&1; "
                        "touch /data/rw && echo rw-ok")
    lines = out.splitlines()
    assert lines[0].strip() == "0" and lines[1].strip() == "0"
    assert "Read-only file system" in lines[2]
    assert lines[3] == "rw-ok"
    assert (src / "secret-file").read_text() == "hidden\n"


def test_sysctl(rt: Runtime, bundle: Bundle) -> None:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read()
    target = "0" if host.strip() == "1" else "1"
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": target, "kernel.msgmax": "12345"}
    out = rt.sh(bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert out.split() == [target, "12345"]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host


def test_sysctl_unknown_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["sysctl"] = {"net.ipv4.no_such_knob": "1"}
    bundle.save()
    rt.refuse(bundle)


def test_sysctl_of_the_host_namespace_refused(rt: Runtime, bundle: Bundle) -> None:
    """A net.* sysctl without a new network namespace would change the host: refused (as runc does)."""
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host = f.read()
    bundle.drop_namespace("network")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/sys")]
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "0" if host.strip() == "1" else "1"}
    bundle.save()
    rt.refuse(bundle)
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host


@pytest.mark.parametrize("prop, field", [("shared", "shared:"), ("slave", None), ("private", None),
                                         ("unbindable", "unbindable")])
def test_propagation_option_on_a_tmpfs_mount(rt: Runtime, bundle: Bundle, prop: str, field: str | None) -> None:
    """runtime-tools' mounts test: a propagation flag on a plain (non-bind) mount applies to that mount."""
    bundle.add_mount("/mnt", "tmpfs", "tmpfs", [prop])
    out = rt.sh(bundle, "grep ' /mnt ' /proc/self/mountinfo")
    if field:
        assert field in out, out
