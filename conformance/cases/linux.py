"""config-linux.md: namespaces, user namespace mappings, devices, sysctl, cgroups, seccomp,
personality."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..core import CONV, MUST, SHOULD, T, case
from ._util import cgroup_dirs_of, cgroup_file, cgroup_v1_root, host_ns
from .process import _probe

NS_TYPES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup"}


# --------------------------------------------------------------------------- namespaces

@case("ns.new", "config-linux.md#namespaces", MUST,
      "each listed namespace without a path is a new namespace",
      mutants=("cfg:namespaces-drop-network",))
def ns_new(t: T):
    types = ["pid", "network", "ipc", "uts", "mount"]
    if os.path.exists("/proc/self/ns/cgroup"):
        types.append("cgroup")
    t.bundle.set_namespaces(*types)
    p = _probe(t)
    for typ in types:
        ns = NS_TYPES[typ]
        t.check(p.get(f"ns.{ns}") not in (None, host_ns(ns)),
                f"{typ} namespace is new ({p.get(f'ns.{ns}')} vs host {host_ns(ns)})")


@case("ns.inherit", "config-linux.md#namespaces", MUST,
      "namespace types not listed are inherited from the runtime",
      mutants=("cfg:namespaces-add-network",))
def ns_inherit(t: T):
    t.bundle.set_namespaces("pid", "mount")
    t.bundle.config.pop("hostname", None)      # setting a hostname needs a uts namespace
    p = _probe(t)
    for ns in ("net", "ipc", "uts", "cgroup"):
        if os.path.exists(f"/proc/self/ns/{ns}"):
            t.eq(p.get(f"ns.{ns}"), host_ns(ns), f"{ns} namespace (runtime's)")
    t.check(p.get("ns.mnt") != host_ns("mnt"), "mount namespace is new")


@case("ns.path", "config-linux.md#namespaces", MUST,
      "a namespace with `path` is joined (net, uts, ipc of a process started by the test)",
      mutants=("cfg:namespaces-drop-path",))
def ns_path(t: T):
    holder = t.spawn(["unshare", "--net", "--uts", "--ipc", "sleep", "300"])
    want = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            want = {ns: os.readlink(f"/proc/{holder.pid}/ns/{ns}") for ns in ("net", "uts", "ipc")}
        except OSError:
            want = {}
        if want and all(want[ns] != host_ns(ns) for ns in want):
            break
        time.sleep(0.02)
    t.check(want and all(want[ns] != host_ns(ns) for ns in want), "helper namespaces exist")
    t.bundle.linux["namespaces"] = [
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": f"/proc/{holder.pid}/ns/net"},
        {"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"},
        {"type": "ipc", "path": f"/proc/{holder.pid}/ns/ipc"},
    ]
    p = _probe(t)
    for ns in ("net", "uts", "ipc"):
        t.eq(p.get(f"ns.{ns}"), want[ns], f"{ns} namespace joined")


@case("ns.path-wrong-type", "config-linux.md#namespaces", MUST,
      "a `path` that is not a namespace of the given type is an error",
      mutants=("cfg:namespaces-drop-path",))
def ns_path_wrong_type(t: T):
    holder = t.spawn(["unshare", "--net", "sleep", "300"])
    time.sleep(0.2)
    t.bundle.set_namespaces("pid", "mount", "ipc", "network")
    t.bundle.config.pop("hostname", None)
    t.bundle.linux["namespaces"].append({"type": "uts", "path": f"/proc/{holder.pid}/ns/net"})
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with a uts namespace path that is a net namespace")
    else:
        t.log(f"ok: create refused it ({res.brief()})")


@case("ns.duplicate", "config-linux.md#namespaces", MUST,
      "duplicated namespace types are an error",
      mutants=("cfg:namespaces-dedup",))
def ns_duplicate(t: T):
    t.bundle.linux["namespaces"].append({"type": "network"})
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with duplicated namespaces")
    else:
        t.log(f"ok: create refused it ({res.brief()})")


def _userns_bundle(t: T):
    b = t.bundle
    b.linux["namespaces"].append({"type": "user"})
    b.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    # sysfs cannot be mounted in a user namespace that does not own the network namespace;
    # keep the mounts a user namespace can make
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] not in ("/sys",)]
    return b


@case("ns.user-mappings", "config-linux.md#user-namespace-mappings", MUST,
      "uidMappings/gidMappings define the user namespace's id maps",
      mutants=("cfg:userns-shift-mapping",))
def ns_user(t: T):
    if not os.path.exists("/proc/self/ns/user"):
        t.skip("no user namespaces on this kernel")
    b = _userns_bundle(t)
    b.probe()
    c = t.container()
    c.create()
    host_uid = Path(f"/proc/{c.pid}/status").read_text()
    p = c.run_to_exit()
    t.check(p.complete, f"/probe ran to completion ({p.describe()})")
    t.check(p.get("ns.user") != host_ns("user"), "user namespace is new")
    t.eq([" ".join(x.split()) for x in p.all("uid_map")], ["0 100000 65536"], "uid_map")
    t.eq([" ".join(x.split()) for x in p.all("gid_map")], ["0 200000 65536"], "gid_map")
    t.eq(p.get("uid"), "0", "uid inside")
    uid_line = [line for line in host_uid.splitlines() if line.startswith("Uid:")][0]
    t.eq(uid_line.split()[1], "100000", "the container process's uid seen from the host")


@case("ns.user-no-chown", "config-linux.md#user-namespace-mappings", SHOULD,
      "the runtime does not chown the rootfs to realize the mapping",
      mutants=("op:chown-rootfs",))
def ns_user_no_chown(t: T):
    if not os.path.exists("/proc/self/ns/user"):
        t.skip("no user namespaces on this kernel")
    b = _userns_bundle(t)
    before = {p: (p.lstat().st_uid, p.lstat().st_gid)
              for p in (b.rootfs, b.rootfs / "bin" / "busybox", b.rootfs / "etc" / "passwd")}
    _probe(t)  # the container runs; the rootfs must come out of it unchanged
    after = {p: (p.lstat().st_uid, p.lstat().st_gid) for p in before}
    t.eq(after, before, "ownership of rootfs files")


# --------------------------------------------------------------------------- devices

@case("devices.listed", "config-linux.md#devices", MUST,
      "devices listed in linux.devices exist with type, major/minor, mode, uid, gid",
      mutants=("cfg:drop-devices",))
def devices_listed(t: T):
    t.bundle.linux["devices"] = [
        {"path": "/dev/conf-full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o640,
         "uid": 11, "gid": 22},
        {"path": "/dev/conf-fifo", "type": "p", "fileMode": 0o600},
    ]
    p = _probe(t)
    d = p.devs.get("/dev/conf-full")
    t.check(d is not None, f"/dev/conf-full exists ({sorted(p.devs)})")
    t.eq((d.kind, d.major, d.minor), ("character special file", 1, 7), "/dev/conf-full type, major, minor")
    t.eq(d.mode, "640", "/dev/conf-full mode")
    t.eq((d.uid, d.gid), (11, 22), "/dev/conf-full owner")
    f = p.devs.get("/dev/conf-fifo")
    t.check(f is not None and f.kind == "fifo", f"/dev/conf-fifo is a fifo ({f})")


@case("devices.existing-mismatch", "config-linux.md#devices", MUST,
      "a device path where a different file exists is an error",
      mutants=("op:create-rc0",))
def devices_mismatch(t: T):
    (t.bundle.rootfs / "opt" / "notadevice").write_text("regular file\n")
    t.bundle.linux["devices"] = [
        {"path": "/opt/notadevice", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        p = c.run_to_exit()
        d = p.devs  # only /dev is listed; check the path directly
        t.fails(res, f"create with a device over an existing regular file (probe: {d.get('/opt/notadevice')})")
    else:
        t.log(f"ok: create refused it ({res.brief()})")


DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                   "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


@case("devices.default", "config-linux.md#default-devices", MUST,
      "/dev/null, zero, full, random, urandom, tty and ptmx are supplied",
      mutants=("op:no-default-devices",))
def devices_default(t: T):
    p = _probe(t)
    devs = p.devs
    for path, (ma, mi) in DEFAULT_DEVICES.items():
        d = devs.get(path)
        t.check(d is not None and d.kind == "character special file" and (d.major, d.minor) == (ma, mi),
                f"{path} is char {ma}:{mi} ({d})")
    ptmx = devs.get("/dev/ptmx")
    t.check(ptmx is not None and (ptmx.target in ("pts/ptmx", "/dev/pts/ptmx")
                                  or (ptmx.major, ptmx.minor) in ((5, 2),)),
            f"/dev/ptmx is a symlink to pts/ptmx or a ptmx device ({ptmx})")


@case("devices.default-usable", "config-linux.md#default-devices", MUST,
      "the default devices work despite a deny-all device cgroup",
      mutants=("op:no-default-devices",))
def devices_default_usable(t: T):
    p = _probe(t, "try null sh -c 'echo x > /dev/null'",
               "kv zero \"$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' ')\"",
               "kv urandom \"$(head -c 8 /dev/urandom | wc -c)\"",
               "try full sh -c 'echo x > /dev/full'")
    t.eq(p.get("null"), "ok", "write to /dev/null")
    t.eq(p.get("zero"), "00000000", "4 bytes from /dev/zero")
    t.eq(p.get("urandom"), "8", "8 bytes from /dev/urandom")
    t.check("space" in (p.get("full") or "").lower(), f"/dev/full gives ENOSPC ({p.get('full')})")


@case("devices.std-symlinks", "config-linux.md#default-devices", CONV,
      "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr symlinks to /proc/self/fd",
      mutants=("op:no-default-devices",))
def devices_symlinks(t: T):
    p = _probe(t)
    devs = p.devs
    for path, target in (("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
                         ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2")):
        d = devs.get(path)
        t.eq(d.target if d else None, target, f"{path} symlink target")


@case("cgroups.devices-order", "config-linux.md#allowed-device-list", MUST,
      "the device allow list is applied in the listed order (later entries win)",
      mutants=("cfg:reverse-device-rules",))
def cgroup_devices(t: T):
    # 1:12 has no driver: opening it gives ENXIO when the cgroup allows it, EPERM when denied
    dev = {"path": "/dev/conf-nodrv", "type": "c", "major": 1, "minor": 12, "fileMode": 0o666}
    snippet = "kv open \"$(cat /dev/conf-nodrv 2>&1 >/dev/null)\""
    allow = {"allow": True, "type": "c", "major": 1, "minor": 12, "access": "rwm"}
    deny = {"allow": False, "type": "c", "major": 1, "minor": 12, "access": "rwm"}
    t.bundle.linux["devices"] = [dev]
    t.bundle.linux["resources"]["devices"] = [{"allow": False, "access": "rwm"}, allow]
    p = _probe(t, snippet)
    t.check("not permitted" not in (p.get("open") or "") and p.get("open"),
            f"deny-all then allow 1:12: open is not EPERM ({p.get('open')!r})")
    b2 = t.new_bundle()
    b2.linux["devices"] = [dev]
    b2.linux["resources"]["devices"] = [{"allow": False, "access": "rwm"}, allow, deny]
    p2 = _probe(t, snippet, bundle=b2)
    t.check("not permitted" in (p2.get("open") or ""),
            f"deny-all, allow 1:12, deny 1:12: open is EPERM ({p2.get('open')!r})")


# --------------------------------------------------------------------------- sysctl

@case("linux.sysctl", "config-linux.md#sysctl", MUST,
      "sysctl values are set in the container (namespaced ipc and net sysctls)",
      mutants=("cfg:drop-sysctl",))
def sysctl(t: T):
    t.bundle.linux["sysctl"] = {"kernel.msgmax": "12345", "net.ipv4.ip_forward": "1",
                                "net.core.somaxconn": "321"}
    host_before = Path("/proc/sys/kernel/msgmax").read_text().strip()
    p = _probe(t, "rd msgmax /proc/sys/kernel/msgmax", "rd ip_forward /proc/sys/net/ipv4/ip_forward",
               "rd somaxconn /proc/sys/net/core/somaxconn")
    t.eq(p.get("msgmax"), "12345", "kernel.msgmax")
    t.eq(p.get("ip_forward"), "1", "net.ipv4.ip_forward")
    t.eq(p.get("somaxconn"), "321", "net.core.somaxconn")
    t.eq(Path("/proc/sys/kernel/msgmax").read_text().strip(), host_before, "host kernel.msgmax unchanged")


# --------------------------------------------------------------------------- cgroups

def _cgroup_value(t: T, c, controller, v1, v2) -> str:
    f = cgroup_file(c.pid, controller, v1, v2)
    if f is None:
        t.skip(f"no {controller} cgroup controller for the container process")
    try:
        return f.read_text().strip()
    except OSError as e:
        from ..core import CaseFailed
        raise CaseFailed(f"cannot read {f}: {e}")


@case("cgroups.path", "config-linux.md#cgroups-path", MUST,
      "an absolute cgroupsPath is taken relative to the cgroup mount point",
      mutants=("cfg:cgroupsPath-elsewhere",))
def cgroups_path(t: T):
    name = f"conformance-{t.new_id()}"
    t.bundle.linux["cgroupsPath"] = f"/{name}"
    t.bundle.sleeper()
    c = t.container()
    c.create()
    dirs = cgroup_dirs_of(c.pid)
    t.check(dirs, "container process is in non-root cgroups")
    bad = [str(d) for d in dirs if d.name != name or not os.path.ismount(d.parent)]
    mountpoints = {str(d.parent) for d in dirs}
    t.eq(bad, [], f"cgroup dirs that are not <mountpoint>/{name} ({sorted(mountpoints)})")
    for d in dirs:
        procs = (d / "cgroup.procs").read_text().split()
        t.check(str(c.pid) in procs, f"pid {c.pid} in {d}/cgroup.procs")


@case("cgroups.memory", "config-linux.md#memory", MUST,
      "resources.memory.limit is applied to the container's cgroup",
      mutants=("cfg:drop-resources",))
def cgroups_memory(t: T):
    t.bundle.linux["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    t.bundle.sleeper()
    c = t.container()
    c.create()
    v = _cgroup_value(t, c, "memory", "memory.limit_in_bytes", "memory.max")
    t.eq(v, str(64 * 1024 * 1024), "memory limit")


@case("cgroups.pids", "config-linux.md#pids", MUST,
      "resources.pids.limit is applied to the container's cgroup",
      mutants=("cfg:drop-resources",))
def cgroups_pids(t: T):
    t.bundle.linux["resources"]["pids"] = {"limit": 42}
    t.bundle.sleeper()
    c = t.container()
    c.create()
    t.eq(_cgroup_value(t, c, "pids", "pids.max", "pids.max"), "42", "pids.max")


@case("cgroups.cpu", "config-linux.md#cpu", MUST,
      "resources.cpu shares/quota/period are applied to the container's cgroup",
      mutants=("cfg:drop-resources",))
def cgroups_cpu(t: T):
    t.bundle.linux["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000}
    t.bundle.sleeper()
    c = t.container()
    c.create()
    if cgroup_v1_root("cpu") is not None:
        t.eq(_cgroup_value(t, c, "cpu", "cpu.shares", "-"), "512", "cpu.shares")
        t.eq(_cgroup_value(t, c, "cpu", "cpu.cfs_quota_us", "-"), "50000", "cpu.cfs_quota_us")
        t.eq(_cgroup_value(t, c, "cpu", "cpu.cfs_period_us", "-"), "100000", "cpu.cfs_period_us")
    else:
        t.eq(_cgroup_value(t, c, "cpu", "-", "cpu.max"), "50000 100000", "cpu.max")


@case("cgroups.delete-keeps-preexisting", "runtime.md#delete", MUST,
      "delete does not remove a cgroup that existed before create (not created by the container)",
      mutants=("op:delete-removes-cgroup",))
def cgroups_preexisting(t: T):
    root = cgroup_v1_root("pids")
    if root is None:
        t.skip("needs a cgroup v1 pids hierarchy")
    name = f"conformance-pre-{t.new_id()}"
    pre = root / name
    pre.mkdir()

    def rm():
        try:
            pre.rmdir()
        except OSError:
            pass
    t.on_cleanup(rm)
    t.bundle.linux["cgroupsPath"] = f"/{name}"
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    t.check(str(c.pid) in (pre / "cgroup.procs").read_text().split(),
            "container process placed in the pre-existing cgroup")
    c.start()
    c.wait("stopped")
    c.delete()
    t.check(pre.exists(), f"pre-existing cgroup {pre} still exists after delete")


# --------------------------------------------------------------------------- seccomp, personality

@case("linux.seccomp", "config-linux.md#seccomp", MUST,
      "a seccomp filter is installed: a syscall with SCMP_ACT_ERRNO fails with that errno",
      mutants=("cfg:drop-seccomp",))
def seccomp(t: T):
    t.bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    p = _probe(t, "try mkdir mkdir /tmp/newdir")
    t.eq(p.get("status.Seccomp"), "2", "Seccomp mode (filter)")
    t.check("denied" in (p.get("mkdir") or "").lower(),
            f"mkdir fails with EACCES (errnoRet 13) ({p.get('mkdir')})")


@case("linux.personality", "config-linux.md#personality", MUST,
      "personality LINUX32 makes uname report a 32-bit machine (or create reports an error)",
      mutants=("cfg:drop-personality",))
def personality(t: T):
    if os.uname().machine != "x86_64":
        t.skip("LINUX32 check written for x86_64 hosts")
    t.bundle.linux["personality"] = {"domain": "LINUX32"}
    t.bundle.probe()
    c = t.container()
    res = c.create(check=False)
    if not res.ok:
        t.log(f"ok: runtime refused personality ({res.brief()})")
        return
    p = c.run_to_exit()
    t.eq(p.get("uname.m"), "i686", "uname -m")
