"""config.md#root, #mounts, config-linux.md masked/readonly paths, rootfs propagation and the
default filesystems, observed through /proc/self/mountinfo and file operations inside."""

from __future__ import annotations

import subprocess

from ..core import MUST, SHOULD, T, case
from .process import _probe


# --------------------------------------------------------------------------- root

@case("root.path", "config.md#root", MUST,
      "root.path (relative to the bundle, or absolute) is the container's root filesystem",
      mutants=("cfg:root-relative-to-cwd",))
def root_path(t: T):
    (t.bundle.rootfs / "marker").write_text("relative-root\n")
    p = _probe(t, "rd marker /marker")
    t.eq(p.get("marker"), "relative-root", "/marker with a relative root.path")
    b2 = t.new_bundle()
    (b2.rootfs / "marker").write_text("absolute-root\n")
    b2.config["root"]["path"] = str(b2.rootfs)
    p2 = _probe(t, "rd marker /marker", bundle=b2)
    t.eq(p2.get("marker"), "absolute-root", "/marker with an absolute root.path")


@case("root.readonly", "config.md#root", MUST,
      "root.readonly true: the root filesystem is read-only inside the container",
      mutants=("cfg:root-writable",))
def root_readonly(t: T):
    t.bundle.config["root"]["readonly"] = True
    p = _probe(t, "try write touch /newfile")
    t.check((p.get("write") or "").startswith("fail"), f"writing to / fails ({p.get('write')})")
    root = p.mount_at("/")
    t.check(root is not None and "ro" in root.options, f"/ is mounted ro ({root and root.options})")
    t.check(not (t.bundle.rootfs / "newfile").exists(), "no file appeared in the rootfs")


@case("root.readonly-default", "config.md#root", MUST,
      "root.readonly defaults to false: the root filesystem is writable",
      mutants=("cfg:root-readonly",))
def root_writable(t: T):
    t.bundle.config["root"].pop("readonly", None)
    p = _probe(t, "try write touch /newfile")
    t.eq(p.get("write"), "ok", "writing to /")
    t.check((t.bundle.rootfs / "newfile").exists(), "the file appeared in the bundle's rootfs")


# --------------------------------------------------------------------------- mounts

@case("mounts.order", "config.md#mounts", MUST,
      "mounts are mounted in the listed order (a later mount covers an earlier one)",
      mutants=("cfg:reverse-mounts",))
def mounts_order(t: T):
    src = t.host_dir("src")
    (src / "from-bind").write_text("bind\n")
    # /mnt/a/sub (bind) first, then /mnt/a (tmpfs) hides it; /mnt/b (tmpfs) then /mnt/b/sub (bind)
    t.bundle.add_mount("/mnt/a/sub", "bind", str(src), ["rbind", "ro"])
    t.bundle.add_mount("/mnt/a", "tmpfs", "tmpfs", ["size=1m"])
    t.bundle.add_mount("/mnt/b", "tmpfs", "tmpfs", ["size=1m"])
    t.bundle.add_mount("/mnt/b/sub", "bind", str(src), ["rbind", "ro"])
    p = _probe(t, "rd a /mnt/a/sub/from-bind", "rd b /mnt/b/sub/from-bind")
    t.eq(p.get("a"), "<missing>", "/mnt/a/sub/from-bind (bind covered by a later tmpfs)")
    t.eq(p.get("b"), "bind", "/mnt/b/sub/from-bind (bind over an earlier tmpfs)")
    order = [m.mountpoint for m in p.mounts if m.mountpoint.startswith("/mnt/")]
    t.eq(order, ["/mnt/a/sub", "/mnt/a", "/mnt/b", "/mnt/b/sub"], "mountinfo order")


@case("mounts.destination-relative", "config.md#mounts", MUST,
      "a relative mount destination (it MUST be absolute) is an invalid value: an error",
      mutants=("cfg:absolutize-destinations",))
def mounts_destination_relative(t: T):
    t.bundle.add_mount("mnt/rel", "tmpfs", "tmpfs", ["size=1m"])
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start with a relative mount destination")
    else:
        t.log(f"ok: create refused it ({res.brief()})")


@case("mounts.tmpfs-options", "config.md#linux-mount-options", MUST,
      "mount options (nosuid, nodev, noexec, ro, data like size/mode) are applied",
      mutants=("cfg:mount-options-drop",))
def mounts_options(t: T):
    t.bundle.add_mount("/opts", "tmpfs", "tmpfs",
                       ["nosuid", "nodev", "noexec", "size=2m", "mode=711"])
    t.bundle.add_mount("/optsro", "tmpfs", "tmpfs", ["ro", "size=1m"])
    p = _probe(t, "kv mode \"$(stat -c %a /opts)\"", "try write touch /optsro/x",
               "cp /bin/busybox /opts/bb 2>/dev/null; try exec /opts/bb true")
    m = p.mount_at("/opts")
    t.check(m is not None and m.fstype == "tmpfs", f"/opts is a tmpfs ({m})")
    t.check({"nosuid", "nodev", "noexec"} <= m.options, f"/opts options {sorted(m.options)}")
    t.check("size=2048k" in m.super_options, f"/opts size=2m ({sorted(m.super_options)})")
    t.eq(p.get("mode"), "711", "/opts mode")
    t.check((p.get("exec") or "").startswith("fail"), f"exec on noexec fails ({p.get('exec')})")
    ro = p.mount_at("/optsro")
    t.check(ro is not None and "ro" in ro.options, f"/optsro is ro ({ro and ro.options})")
    t.check((p.get("write") or "").startswith("fail"), f"write on the ro tmpfs fails ({p.get('write')})")


@case("mounts.bind", "config.md#linux-mount-options", MUST,
      "bind mounts share the host directory (rw), `ro` makes them read-only",
      mutants=("cfg:bind-ro-drop",))
def mounts_bind(t: T):
    rw = t.host_dir("rw")
    ro = t.host_dir("ro")
    (rw / "host").write_text("from-host\n")
    (ro / "host").write_text("from-host\n")
    t.bundle.add_mount("/rw", "bind", str(rw), ["rbind", "rw"])
    t.bundle.add_mount("/ro", "bind", str(ro), ["rbind", "ro"])
    p = _probe(t, "rd rw.read /rw/host", "try rw.write sh -c 'echo from-container > /rw/new'",
               "try ro.write touch /ro/new")
    t.eq(p.get("rw.read"), "from-host", "host file read through the bind mount")
    t.eq(p.get("rw.write"), "ok", "write through the rw bind mount")
    t.eq((rw / "new").read_text() if (rw / "new").exists() else None, "from-container\n",
         "file written in the container, seen on the host")
    t.check((p.get("ro.write") or "").startswith("fail"), f"write through the ro bind fails ({p.get('ro.write')})")
    t.check(not (ro / "new").exists(), "no file appeared in the ro source")


@case("mounts.bind-source-relative", "config.md#mounts", MUST,
      "a relative bind-mount source is relative to the bundle; `bind`/`rbind` make a bind mount "
      "whatever the type",
      mutants=("cfg:sources-relative-to-cwd",))
def mounts_bind_relative(t: T):
    src = t.bundle.path / "share"
    src.mkdir()
    (src / "f").write_text("bundle-relative\n")
    t.bundle.config["mounts"].append({"destination": "/rel", "source": "share", "options": ["rbind"]})
    p = _probe(t, "rd f /rel/f")
    t.eq(p.get("f"), "bundle-relative", "file read through a bind of the bundle-relative source `share`")


@case("mounts.rbind", "config.md#linux-mount-options", MUST,
      "`rbind` carries submounts of the source, `bind` does not",
      mutants=("cfg:rbind-to-bind",))
def mounts_rbind(t: T):
    src = t.host_dir("src")
    sub = src / "sub"
    sub.mkdir()
    (sub / "under").write_text("under-mount\n")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "conformance", str(sub)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.skip(f"cannot mount a tmpfs on the host for the source: {r.stderr.strip()}")
    t.on_cleanup(lambda: subprocess.run(["umount", "-l", str(sub)], capture_output=True))
    (sub / "over").write_text("submount\n")
    t.bundle.add_mount("/r", "bind", str(src), ["rbind"])
    t.bundle.add_mount("/b", "bind", str(src), ["bind"])
    p = _probe(t, "rd r /r/sub/over", "rd b /b/sub/under")
    t.eq(p.get("r"), "submount", "rbind: the submount is visible")
    t.eq(p.get("b"), "under-mount", "bind: the directory under the submount is visible instead")


# --------------------------------------------------------------------------- masked / readonly

@case("linux.maskedPaths", "config-linux.md#masked-paths", MUST,
      "maskedPaths (files and directories) cannot be read inside the container",
      mutants=("cfg:drop-maskedPaths",))
def masked_paths(t: T):
    (t.bundle.rootfs / "secret-dir").mkdir()
    (t.bundle.rootfs / "secret-dir" / "f").write_text("secret\n")
    (t.bundle.rootfs / "secret-file").write_text("secret\n")
    t.bundle.linux["maskedPaths"] = ["/secret-dir", "/secret-file", "/proc/kcore"]
    p = _probe(t, "rd file /secret-file", "kv dir \"$(ls -A /secret-dir 2>&1)\"",
               "kv kcore \"$(head -c 16 /proc/kcore 2>/dev/null | wc -c)\"")
    t.check(p.get("file") in ("", None) or "ermission denied" in p.get("file", ""),
            f"/secret-file reads nothing ({p.get('file')!r})")
    t.check("f" not in (p.get("dir") or "").split(), f"/secret-dir lists nothing ({p.get('dir')!r})")
    t.eq(p.get("kcore"), "0", "bytes read from /proc/kcore")


@case("linux.readonlyPaths", "config-linux.md#readonly-paths", MUST,
      "readonlyPaths are read-only inside the container (and still readable)",
      mutants=("cfg:drop-readonlyPaths",))
def readonly_paths(t: T):
    (t.bundle.rootfs / "rodir").mkdir()
    (t.bundle.rootfs / "rodir" / "f").write_text("data\n")
    t.bundle.linux["readonlyPaths"] = ["/rodir", "/proc/sys"]
    p = _probe(t, "rd read /rodir/f", "try write touch /rodir/new",
               "try sysctl sh -c 'echo 1 > /proc/sys/kernel/ns_last_pid'")
    t.eq(p.get("read"), "data", "/rodir/f readable")
    t.check((p.get("write") or "").startswith("fail"), f"creating /rodir/new fails ({p.get('write')})")
    t.check((p.get("sysctl") or "").startswith("fail"), f"writing under /proc/sys fails ({p.get('sysctl')})")
    for path in ("/rodir", "/proc/sys"):
        m = p.mount_at(path)
        t.check(m is not None and "ro" in m.options, f"{path} is a ro mount ({m and m.options})")


# --------------------------------------------------------------------------- propagation

def _shared_host_bundle(t: T):
    """A bundle inside a directory that is a shared mount on the host (a mount this case makes
    and removes), so that propagation from the host to the container can be observed."""
    d = t.host_dir("shared")
    for argv in (["mount", "--bind", str(d), str(d)], ["mount", "--make-private", str(d)],
                 ["mount", "--make-shared", str(d)]):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            t.skip(f"cannot prepare a shared host mount ({' '.join(argv)}: {r.stderr.strip()})")
        if argv[1] == "--bind":
            t.on_cleanup(lambda: subprocess.run(["umount", "-l", str(d)], capture_output=True))
    return t.new_bundle(parent=d)


def _host_mount_after_create(t: T, value: str):
    """create with rootfsPropagation=value, then mount a tmpfs under the rootfs on the host,
    then start: returns (probe, whether the container saw the host mount)."""
    b = _shared_host_bundle(t)
    b.linux["rootfsPropagation"] = value
    late = b.rootfs / "mnt" / "late"
    late.mkdir(parents=True)
    b.probe("rd late /mnt/late/file")
    c = t.container(b)
    c.create()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "conformance-late", str(late)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.skip(f"cannot mount a tmpfs on the host: {r.stderr.strip()}")
    t.on_cleanup(lambda: subprocess.run(["umount", "-l", str(late)], capture_output=True))
    (late / "file").write_text("propagated\n")
    p = c.run_to_exit()
    t.check(p.complete, f"/probe ran to completion ({p.describe()})")
    return p, p.get("late") == "propagated"


def _propagation_tag(t: T, value: str, expect: str):
    t.bundle.linux["rootfsPropagation"] = value
    t.bundle.probe()
    c = t.container()
    c.create()
    p = c.run_to_exit()
    t.check(p.complete, f"/probe ran to completion ({p.describe()})")
    root = p.mount_at("/")
    t.check(root is not None, "/ in mountinfo")
    t.eq(root.propagation, expect, f"propagation of / (optional fields {root.optional})")


@case("linux.rootfsPropagation-private", "config-linux.md#rootfs-mount-propagation", MUST,
      "rootfsPropagation private: host mount events do not reach the container",
      mutants=("cfg:propagation-rslave",))
def propagation_private(t: T):
    p, seen = _host_mount_after_create(t, "private")
    t.check(not seen, f"a host mount made after create is not visible inside ({p.get('late')!r})")
    root = p.mount_at("/")
    t.eq(root and root.propagation, "private", f"propagation of / ({root and root.optional})")


@case("linux.rootfsPropagation-slave", "config-linux.md#rootfs-mount-propagation", MUST,
      "rootfsPropagation slave: host mount events reach the container (rootfs is master:N)",
      mutants=("cfg:propagation-private",))
def propagation_slave(t: T):
    p, seen = _host_mount_after_create(t, "slave")
    t.check(seen, f"a host mount made after create is visible inside ({p.get('late')!r})")
    root = p.mount_at("/")
    t.eq(root and root.propagation, "slave", f"propagation of / ({root and root.optional})")


@case("linux.rootfsPropagation-shared", "config-linux.md#rootfs-mount-propagation", MUST,
      "rootfsPropagation shared: the rootfs mount is in a peer group (shared:N)",
      mutants=("cfg:propagation-private",))
def propagation_shared(t: T):
    _propagation_tag(t, "shared", "shared")


@case("linux.rootfsPropagation-unbindable", "config-linux.md#rootfs-mount-propagation", MUST,
      "rootfsPropagation unbindable: the rootfs mount is unbindable",
      mutants=("cfg:propagation-private",))
def propagation_unbindable(t: T):
    _propagation_tag(t, "unbindable", "unbindable")


@case("linux.default-filesystems", "config-linux.md#default-filesystems", SHOULD,
      "/proc, /sys, /dev/pts, /dev/shm are proc, sysfs, devpts, tmpfs",
      mutants=("cfg:drop-default-mounts",))
def default_filesystems(t: T):
    p = _probe(t)
    for path, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev/pts", "devpts"),
                         ("/dev/shm", "tmpfs")):
        m = p.mount_at(path)
        t.eq(m.fstype if m else None, fstype, f"filesystem at {path}")


@case("mounts.proc-is-container-pidns", "config.md#mounts", MUST,
      "a proc mount inside a new pid namespace shows the container's processes (pid 1 is the program)",
      mutants=("cfg:drop-pid-namespace",))
def proc_pidns(t: T):
    p = _probe(t, "kv pid1 \"$(cat /proc/1/cmdline | tr '\\0' ' ')\"",
               "kv nprocs \"$(ls -d /proc/[0-9]* | wc -l)\"")
    t.eq(p.get("pid"), "1", "the program is pid 1")
    t.check((p.get("pid1") or "").startswith("/bin/sh /probe"), f"/proc/1 is the probe ({p.get('pid1')!r})")
    t.check(int(p.get("nprocs") or 99) < 10, f"only container processes in /proc ({p.get('nprocs')})")
