"""Black-box security checks: what a hostile rootfs or config must not achieve against the host."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import (Bundle, ConsoleSocket, Runtime, bare_procfs_probe, bare_procfs_refused, pid_alive, procs_cgroup_dir,
                      wait_for)


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    """Names under d with their (mode, size): enough to see anything created, removed or replaced."""
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            out[os.path.relpath(p, d)] = (st.st_mode, st.st_size)
    return out


@pytest.fixture
def hostdir(rt: Runtime, short_tmp: Path) -> Path:
    """A host directory in /tmp (short path) with a marker file; watched for mounts after the test."""
    rt.watch(short_tmp)
    (short_tmp / "marker").write_text("host marker\n")
    return short_tmp


def test_no_inheritable_capabilities(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "grep CapInh /proc/self/status")
    assert out.split() == ["CapInh:", "0000000000000000"]


def test_cgroup_mounts_are_read_only(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "grep /sys/fs/cgroup /proc/mounts")
    lines = out.splitlines()
    assert lines
    for line in lines:
        assert "ro" in line.split()[3].split(","), line
    # v1: a tmpfs with a directory per hierarchy; pure v2: /sys/fs/cgroup is the container's cgroup itself
    out = rt.sh(bundle, "for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do "
                        "[ -e $f ] && (echo 1 > $f) 2>&1; done; d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup; "
                        "mkdir $d/evil 2>&1 || true")
    assert "Read-only file system" in out
    assert "Permission denied" not in out or "Read-only" in out


def test_cgroup_mount_shows_only_the_containers_cgroup(rt: Runtime, bundle: Bundle) -> None:
    cid = rt.new_id()
    bundle.sh("d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup; "  # v1, or the pure v2 container cgroup
              "cat $d/cgroup.procs | wc -l; find $d -mindepth 1 -type d | wc -l")
    r = rt.run(bundle, cid)
    assert r.returncode == 0, r.stderr
    count, subdirs = r.stdout.split()
    assert 1 <= int(count) <= 3  # sh, cat, wc: the container's own processes only (and its cgroup.procs read)
    assert subdirs == "0"


@pytest.mark.parametrize("link", ["a", "b"])
def test_symlinked_mount_destinations_stay_in_the_rootfs(rt: Runtime, bundle: Bundle, hostdir: Path,
                                                         link: str) -> None:
    rootfs = bundle.private_rootfs(readonly=True)
    target = "/tmp/" + hostdir.name
    os.symlink(target if link == "a" else "../../../.." + target, rootfs / link)
    (rootfs / target.lstrip("/")).mkdir(parents=True)  # so that the link resolves inside the rootfs
    before = snapshot(hostdir)
    bundle.add_mount("/%s/x" % link, "tmpfs", "tmpfs", ["size=1m"])
    bundle.sh("echo inside > /%s/x/file; ls /%s; mount | grep -c ' %s/x '" % (link, target, target))
    r = rt.run(bundle)
    assert snapshot(hostdir) == before, "the host directory was touched"
    if r.returncode == 0:
        assert (rootfs / target.lstrip("/") / "x").is_dir(), "the mount point was not made inside the rootfs"
        assert "x" in r.stdout.split()
    else:
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["proc", "dev"])
def test_rootfs_dir_symlinked_out_refused(rt: Runtime, bundle: Bundle, hostdir: Path, name: str) -> None:
    """rootfs/proc or rootfs/dev a link to a host directory: create refused, the directory untouched."""
    rootfs = bundle.private_rootfs()
    os.rmdir(rootfs / name)
    os.symlink(str(hostdir), rootfs / name)
    before = snapshot(hostdir)
    bundle.save()
    cid = rt.new_id()
    rt.refuse(bundle, cid=cid)
    assert snapshot(hostdir) == before
    assert "does not exist" in rt.fail("state", cid)


def test_rootfs_proc_symlink_inside_refused(rt: Runtime, bundle: Bundle) -> None:
    """Even a link that stays inside the rootfs is no place for procfs (CVE-2019-16884)."""
    rootfs = bundle.private_rootfs()
    os.rmdir(rootfs / "proc")
    (rootfs / "fakeproc").mkdir()
    os.symlink("fakeproc", rootfs / "proc")
    bundle.save()
    rt.refuse(bundle)


def test_bind_of_a_directory_onto_proc_refused(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    fake = tmp_path / "fakeproc"
    (fake / "self").mkdir(parents=True)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.bind(fake, "/proc")
    bundle.save()
    cid = rt.new_id()
    line = rt.refuse(bundle, cid=cid)
    assert "/proc" in line


def test_bind_after_proc_onto_proc_refused(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    fake = tmp_path / "fakeproc"
    fake.mkdir()
    bundle.bind(fake, "/proc")  # the real proc first, a directory over it later
    bundle.save()
    rt.refuse(bundle)


@pytest.mark.parametrize("dest", ["/proc/self/attr",
                                  "/proc/1/attr",
                                  "/proc/sys/kernel", "/proc/self"])
def test_tmpfs_over_procfs_refused(rt: Runtime, bundle: Bundle, dest: str) -> None:
    bundle.add_mount(dest, "tmpfs", "tmpfs", [])
    bundle.save()
    rt.refuse(bundle)


def test_rootfs_dev_symlink_refused_without_dev_tmpfs(rt: Runtime, bundle: Bundle, hostdir: Path) -> None:
    """No /dev mount in the config: device nodes would be made through the link, onto the host."""
    rootfs = bundle.private_rootfs()
    os.rmdir(rootfs / "dev")
    os.symlink(str(hostdir), rootfs / "dev")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    before = snapshot(hostdir)
    bundle.save()
    rt.refuse(bundle)
    assert snapshot(hostdir) == before


def test_dev_null_replaced_in_rootfs_is_not_used_for_masking(rt: Runtime, bundle: Bundle, hostdir: Path) -> None:
    """No /dev tmpfs, and the rootfs's /dev/null is a link to a host file: masking must never bind that file,
    and the host file stays as it was."""
    rootfs = bundle.private_rootfs()
    victim = hostdir / "victim"
    victim.write_text("do not touch\n")
    os.symlink(str(victim), rootfs / "dev" / "null")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.linux["maskedPaths"] = ["/proc/keys", "/proc/timer_list", "/etc/passwd"]
    bundle.sh("cat /proc/keys /etc/passwd | wc -c; stat -c '%F %t %T' /dev/null")
    r = rt.run(bundle)
    assert victim.read_text() == "do not touch\n"
    if r.returncode == 0:
        lines = r.stdout.splitlines()
        assert lines[0].strip() == "0"
        assert lines[1] == "character special file 1 3"
    else:
        assert "Traceback" not in r.stderr


def test_dev_null_regular_file_in_rootfs(rt: Runtime, bundle: Bundle) -> None:
    rootfs = bundle.private_rootfs()
    (rootfs / "dev" / "null").write_text("not a device\n")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.linux["maskedPaths"] = ["/etc/passwd"]
    bundle.sh("wc -c < /etc/passwd; stat -c '%F' /dev/null")
    r = rt.run(bundle)
    if r.returncode == 0:
        assert r.stdout.split()[0] == "0"
        assert "character special file" in r.stdout
    else:
        assert "Traceback" not in r.stderr


def test_leaked_fds_invisible(rt: Runtime, bundle: Bundle, hostdir: Path, tmp_path: Path) -> None:
    """pyoci create with extra inheritable fds to a host directory: the container's process has only 0, 1, 2
    (checked from the host, on a process that opens nothing itself)."""
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    cmd = 'exec "$@" 3<%s 4<%s 8<%s 9<%s' % (hostdir, hostdir, hostdir / "marker", hostdir)
    with open(tmp_path / "stdio", "w") as out:  # the container inherits it: a file, not a pipe
        rc = subprocess.run(["sh", "-c", cmd, "sh", *rt.argv("create", "-b", bundle.path, cid)],
                            stdout=out, stderr=out, timeout=30, stdin=subprocess.DEVNULL).returncode
    assert rc == 0, (tmp_path / "stdio").read_text()
    try:
        pid = rt.state(cid)["pid"]
        rt.ok("start", cid)
        wait_for(lambda: os.readlink("/proc/%d/exe" % pid).endswith("busybox"), what="exec")
        assert sorted(os.listdir("/proc/%d/fd" % pid)) == ["0", "1", "2"]
        for fd in ("0", "1", "2"):
            assert not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(str(hostdir))
    finally:
        rt.ok("delete", "-f", cid)


@pytest.mark.parametrize("n", range(3, 21))
def test_cwd_through_proc_self_fd(rt: Runtime, bundle: Bundle, hostdir: Path, n: int) -> None:
    """cwd=/proc/self/fd/N (CVE-2024-21626): never a host directory, even with host dir fds inherited."""
    bundle.process["cwd"] = "/proc/self/fd/%d" % n
    bundle.sh("ls -a; cat marker 2>/dev/null; ls ../../.. 2>/dev/null")
    bundle.save()
    redirects = " ".join("%d<%s" % (fd, hostdir) for fd in (3, 4, 5, 6, 7, 8, 9))
    cmd = 'exec "$@" %s' % redirects
    r = subprocess.run(["sh", "-c", cmd, "sh", *rt.argv("run", "-b", bundle.path, rt.new_id())],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert "host marker" not in r.stdout
    assert "marker" not in r.stdout.split()
    assert "Traceback" not in r.stderr


def test_container_cannot_see_runtime_host_paths(rt: Runtime, bundle: Bundle, hostdir: Path) -> None:
    bundle.sh("ls %s 2>&1; ls /proc/1/root%s 2>&1; true" % (hostdir, hostdir))
    r = rt.run(bundle)
    assert r.returncode == 0
    assert "marker" not in r.stdout


def test_init_is_not_dumpable_while_created(rt: Runtime, bundle: Bundle) -> None:
    """Before exec the init holds the runtime's state: a process in the container must not be able to read
    its memory or open its fds. Checked from the host through /proc/PID/status 'Dumpable'-like ownership."""
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        st = os.stat("/proc/%d/fd" % pid)
        assert st.st_uid == 0
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        assert "NoNewPrivs" in status
        # non-dumpable processes have their /proc files owned by root:root with restricted modes
        assert (os.stat("/proc/%d/environ" % pid).st_mode & 0o077) == 0


def test_host_pid_namespace_is_not_visible(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "ls /proc | grep -E '^[0-9]+$' | sort -n | tail -n 1")
    assert int(out.strip()) < 20


def test_runtime_process_is_gone_after_create(rt: Runtime, bundle: Bundle) -> None:
    """Nothing of pyoci stays around a created container except its init."""
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        assert pid_alive(pid)
        d = procs_cgroup_dir(pid)
        assert d.name == cid
        procs = (d / "cgroup.procs").read_text().split()
        assert procs == [str(pid)]
        wait_for(lambda: True)


def test_proc_self_exe_entrypoint_never_reaches_the_host_interpreter(rt: Runtime, bundle: Bundle) -> None:
    """CVE-2019-5736: an entrypoint `#!/proc/self/exe` re-executes whatever /proc/self/exe is during the exec.
    pyoci execs through a sealed memfd copy of its tiny helper, so it is never the host's Python, and the
    helper it re-runs refuses to do anything (exit 127)."""
    rootfs = bundle.private_rootfs()
    (rootfs / "evil").write_text("#!/proc/self/exe\n")
    (rootfs / "evil").chmod(0o755)
    bundle.args("/evil")
    r = rt.run(bundle)
    assert r.returncode == 127, (r.returncode, r.stdout, r.stderr)
    assert "Python" not in r.stdout + r.stderr
    bundle.sh("readlink /proc/1/exe; echo; cat /proc/self/status | grep -i '^name'")
    out = rt.run(bundle).stdout
    assert "python" not in out.lower()


def test_proc_self_exe_cannot_be_opened_for_writing(rt: Runtime, bundle: Bundle) -> None:
    """And the busybox running as the container's process cannot write its own binary through
    /proc/self/exe either (ETXTBSY): nothing of the runtime is reachable."""
    out = rt.sh(bundle, "echo x 2>&1 >> /proc/self/exe; echo rc=$?")
    assert "rc=0" not in out


def test_sysctl_outside_the_containers_namespaces_refused(rt: Runtime, bundle: Bundle) -> None:
    """kernel.core_pattern is not namespaced: setting it would change the host (CVE-2025-52881's target)."""
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    bundle.linux["sysctl"] = {"kernel.core_pattern": "|/tmp/pwn"}
    bundle.save()
    line = rt.refuse(bundle)
    assert "kernel.core_pattern" in line
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before


def test_ptmx_that_is_not_devpts_refused(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    """CVE-2025-52565: with no devpts mounted, /dev/pts/ptmx in the rootfs is whatever the image put there;
    the console must come from a real devpts or not at all."""
    rootfs = bundle.private_rootfs()
    (rootfs / "dev" / "pts").mkdir(parents=True, exist_ok=True)
    (rootfs / "dev" / "pts" / "ptmx").symlink_to("/etc/passwd")
    (rootfs / "dev" / "ptmx").symlink_to("pts/ptmx")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/dev")]
    bundle.process["terminal"] = True
    bundle.save()
    line = rt.refuse(bundle, "--console-socket", console.path)
    assert "devpts" in line


def test_symlink_into_procfs_as_mount_destination_refused(rt: Runtime, bundle: Bundle, hostdir: Path) -> None:
    """An image link /data -> /proc/sys/kernel turns a bind onto /data into a fake procfs file tree (the
    CVE-2019-16884 class): the check is made on the resolved destination, not on its spelling."""
    rootfs = bundle.private_rootfs()
    (rootfs / "kdata").symlink_to("/proc/sys/kernel")
    bundle.bind(hostdir, "/kdata")
    bundle.save()
    line = rt.refuse(bundle)
    assert "procfs" in line


def test_no_capabilities_object_means_no_capabilities(rt: Runtime, bundle: Bundle) -> None:
    """Without process.capabilities, runc gives root nothing: every set, the bounding set included (with a
    full bounding set, exec would hand root every capability back)."""
    del bundle.process["capabilities"]
    bundle.process["noNewPrivileges"] = False
    out = rt.sh(bundle, "grep ^Cap /proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert all(int(v, 16) == 0 for v in caps.values()), caps


def test_cap_last_cap_from_the_image_is_not_trusted(rt: Runtime, bundle: Bundle) -> None:
    """With procfs mounted elsewhere, the container's /proc/sys/kernel/cap_last_cap is an image file saying -1:
    pyoci reads the host's before it enters the container, so the bounding set is still cut to the config's."""
    rootfs = bundle.private_rootfs()
    (rootfs / "proc" / "sys" / "kernel").mkdir(parents=True)
    (rootfs / "proc" / "sys" / "kernel" / "cap_last_cap").write_text("-1\n")
    for m in bundle.config["mounts"]:
        if m["destination"] == "/proc":
            m["destination"] = "/kproc"
    bundle.linux.pop("maskedPaths", None)
    bundle.linux.pop("readonlyPaths", None)
    bundle.process["noNewPrivileges"] = False
    out = rt.sh(bundle, "cat /proc/sys/kernel/cap_last_cap; grep -E '^Cap(Bnd|Eff|Prm)' /kproc/self/status")
    lines = out.split("\n")
    assert lines[0] == "-1"
    caps = dict(line.split(":\t") for line in lines[1:] if line)
    expected = (1 << 5) | (1 << 10) | (1 << 29)  # KILL, NET_BIND_SERVICE, AUDIT_WRITE
    assert all(int(v, 16) == expected for v in caps.values()), caps


# --- CVE-2019-5736 class: no host executable reachable through /proc/PID/exe or map_files -------------------
_RACER = r'''
targets="$1"; out=/out/seen
: > $out
while [ ! -e /out/stop ]; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/$$ ] && continue
    for f in $p/exe $p/map_files/*; do
      id=$(stat -L -c '%d:%i' $f 2>/dev/null) || continue
      case " $targets " in *" $id "*)
        exec 5<$f || continue
        echo "got $f $id" >> $out
        while [ -e $p/exe ] && [ "$(stat -L -c %d:%i $p/exe 2>/dev/null)" = "$id" ]; do :; done
        (echo PWNED >> /proc/self/fd/5) 2>> $out && echo "wrote $id" >> $out
        exec 5<&-;;
      esac
    done
  done
done
echo done >> $out
'''


def _file_id(path: str) -> str:
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def _host_interpreter_files() -> list[str]:
    """The interpreter pyoci runs on and the shared libraries it maps from the Python install."""
    import sys

    files = {os.path.realpath(sys.executable)}
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "python" in path.lower() and path.startswith("/") and os.path.isfile(path):
                files.add(path)
    return sorted(files)


def _all_caps_racer(bundle: Bundle, targets: list[str]) -> Path:
    from pyoci.process import CAPABILITIES

    caps = [c for c in CAPABILITIES if c != "CAP_SYS_RESOURCE"]  # not in this host's bounding set
    bundle.process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    rootfs = bundle.private_rootfs()
    (rootfs / "race.sh").write_text(_RACER)
    (rootfs / "out").mkdir(exist_ok=True)
    bundle.args("sh", "/race.sh", " ".join(targets))
    return rootfs / "out"


def _stop_racer(out: Path) -> str:
    (out / "stop").write_text("")
    wait_for(lambda: "done" in (out / "seen").read_text(), 20, what="the racer to stop")
    return (out / "seen").read_text()


def test_exec_never_shows_the_host_interpreter(rt: Runtime, bundle: Bundle) -> None:
    """A container with every capability (CAP_SYS_PTRACE, CAP_SYS_ADMIN for map_files) races /proc/*/exe
    and /proc/*/map_files/* of everything it can see while `exec` runs 20 times."""
    files = _host_interpreter_files()
    before = [(Path(f).read_bytes(), os.stat(f).st_mtime_ns) for f in files]
    out = _all_caps_racer(bundle, [_file_id(f) for f in files])
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        wait_for(lambda: (out / "seen").exists())
        for _ in range(20):
            rt.ok("exec", cid, "true")
        seen = _stop_racer(out)
    assert "got" not in seen, seen
    assert [(Path(f).read_bytes(), os.stat(f).st_mtime_ns) for f in files] == before


def test_created_init_shows_no_host_file(rt: Runtime, bundle: Bundle) -> None:
    files = _host_interpreter_files()
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        out = rt.ok("exec", "--cap", "CAP_SYS_PTRACE", "--cap", "CAP_SYS_ADMIN", cid, "sh", "-c",
                    "for f in /proc/1/exe /proc/1/map_files/*; do stat -L -c %d:%i $f; done").stdout.split()
    assert out, "exe and map_files were readable"
    assert not set(out) & {_file_id(f) for f in files}


def test_exe_race_control_works_on_an_unprotected_process(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """The control: the same racer, given a host binary run in the container's pid namespace without any
    protection (nsenter), grabs it and writes it once it exits. So the tests above would see a leak."""
    victim = tmp_path / "victim"
    victim.write_bytes(Path("/bin/sleep").read_bytes())
    victim.chmod(0o755)
    out = _all_caps_racer(bundle, [_file_id(str(victim))])
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        wait_for(lambda: (out / "seen").exists())
        pid = rt.state(cid)["pid"]
        for _ in range(5):
            subprocess.run(["nsenter", "-t", str(pid), "-p", "--", str(victim), "0.3"], check=True)
            if "wrote" in (out / "seen").read_text():
                break
        wait_for(lambda: "wrote" in (out / "seen").read_text(), 5, what="the control attack")
        _stop_racer(out)
    assert victim.read_bytes().endswith(b"PWNED\n")


# --- paths and mounts (issue 8, part 5) ----------------------------------------------------------------------
@pytest.mark.parametrize("link,dest", [("../run", "/var/run/secrets/kubernetes.io/serviceaccount"),
                                       ("/etc/conf", "/conf/app")])
def test_mount_below_an_in_rootfs_symlink_to_missing_dirs(rt: Runtime, bundle: Bundle, hostdir: Path, link: str,
                                                         dest: str) -> None:
    """Debian images have var/run -> ../run; the missing directories are made inside the rootfs."""
    rootfs = bundle.private_rootfs()
    name = dest.split("/")[1] if link.startswith("/") else "var/run"
    (rootfs / name).parent.mkdir(parents=True, exist_ok=True)
    if (rootfs / name).is_symlink() or (rootfs / name).exists():
        subprocess.run(["rm", "-rf", str(rootfs / name)], check=True)
    for d in ("run", "etc/conf"):
        subprocess.run(["rm", "-rf", str(rootfs / d)], check=True)
    (rootfs / name).symlink_to(link)
    bundle.bind(hostdir, dest, "ro")
    out = rt.sh(bundle, "cat %s/marker" % dest)
    assert "host marker" in out
    made = rootfs / ("run/secrets/kubernetes.io/serviceaccount" if name == "var/run" else "etc/conf/app")
    assert made.is_dir() and not made.is_symlink()


def test_cgroup2_mount_is_the_containers_own_and_read_only(rt: Runtime, bundle: Bundle) -> None:
    bundle.add_mount("/sys/fs/cgroup", type="cgroup2", source="cgroup2", options=["nosuid", "noexec", "nodev"])
    bundle.sh("grep ' /sys/fs/cgroup ' /proc/self/mountinfo; mkdir /sys/fs/cgroup/x 2>&1; true")
    out = rt.run(bundle).stdout
    line = out.splitlines()[0].split()
    assert line[3] == "/", line  # the container's cgroup, its cgroup namespace's root (the host's shows "/..")
    assert "ro" in line[5].split(","), line
    assert "Read-only file system" in out


def test_created_init_holds_none_of_the_callers_fds(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    with open(tmp_path / "fd-a", "w") as a, open(tmp_path / "fd-b", "w") as b:
        os.set_inheritable(a.fileno(), True)
        os.set_inheritable(b.fileno(), True)
        r = subprocess.run(rt.argv("create", "--bundle", bundle.path, cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False)
    try:
        assert r.returncode == 0
        pid = rt.state(cid)["pid"]
        targets = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
        assert not [t for t in targets if str(tmp_path) in t], targets
    finally:
        rt.cmd("delete", "--force", cid)


@pytest.mark.parametrize("pivot", [[], ["--no-pivot"]], ids=["pivot_root", "no-pivot"])
def test_a_nested_user_namespace_cannot_mount_a_bare_procfs(rt: Runtime, bundle: Bundle, pivot: list[str]) -> None:
    """The kernel lets a process in a new user namespace mount a fresh proc (or sysfs) only when its mount
    namespace already has a fully visible one. The container's /proc is not (maskedPaths), but with --no-pivot
    the host's /proc stayed behind the chroot, so `unshare -mrpf` could mount a bare one and reach
    /proc/sysrq-trigger (runc's no_pivot test): those mounts are detached before the chroot."""
    bare_procfs_probe(bundle)
    r = rt.run(bundle, None, *pivot)
    assert bare_procfs_refused(r), r.stdout + r.stderr


def test_no_pivot_fresh_procfs_shows_only_the_container(rt: Runtime, bundle: Bundle) -> None:
    """--no-pivot (MS_MOVE + chroot): the host's /proc stays in the mount namespace under the rootfs; a procfs
    mounted from inside must show the container's pid namespace only."""
    bundle.process["capabilities"] = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
    bundle.add_mount("/mnt", type="tmpfs", source="tmpfs")
    bundle.sh("mount -t proc none /mnt && ls /mnt | grep -c '^[0-9]'")
    r = rt.run(bundle, None, "--no-pivot")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) <= 4, r.stdout
