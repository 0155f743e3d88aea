"""Where pyoci behaves as runc does (or as the spec says where runc is lenient): mounts, terminals, process set-up,
and the answers engines read. Where runc's behaviour is the definition, the same bundle runs under runc (the
oracle, /usr/sbin/runc) in the same test."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from conftest import RUNC, Bundle, Runtime, one_line_error

HAVE_RUNC = os.access(RUNC, os.X_OK)


def runc_run(bundle: Bundle, root: Path) -> subprocess.CompletedProcess[str]:
    """runc run of the same bundle, with its own --root (removed by runc when the container ends)."""
    bundle.save()
    cid = "runc-" + uuid.uuid4().hex[:10]
    r = subprocess.run([RUNC, "--root", str(root), "run", "--bundle", str(bundle.path), cid], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True)
    return r


def both(rt: Runtime, bundle: Bundle, tmp_path: Path) -> tuple[str, str | None]:
    """stdout of pyoci run and (when runc is here) of runc run of the same bundle; both must exit 0."""
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    if not HAVE_RUNC:
        return r.stdout, None
    o = runc_run(bundle, tmp_path / "runc-root")
    assert o.returncode == 0, o.stderr
    return r.stdout, o.stdout


@contextlib.contextmanager
def host_tmpfs(path: Path) -> Iterator[Path]:
    """A tmpfs of the test's own at path (a submount for the recursive options), always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyoci-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def mountinfo_options(text: str) -> dict[str, set[str]]:
    out = {}
    for line in text.splitlines():
        if " - " not in line:
            continue
        f = line.split(" - ")[0].split()
        out[f[4]] = set(f[5].split(","))
    return out


@pytest.fixture
def ubundle(rt: Runtime, short_tmp: Path, rootfs: Path) -> Bundle:
    """A bundle in a directory the container's root (host uid 100000) can traverse (pytest's are 0700)."""
    short_tmp.chmod(0o711)
    rt.watch(short_tmp)
    b = Bundle(short_tmp / "b", rootfs)
    b.path.chmod(0o711)
    return b


# ------------------------------------------------------------------------------------------ mounts
def test_tmpcopyup_copies_the_directory_into_the_tmpfs(rt: Runtime, bundle: Bundle) -> None:
    rootfs = bundle.private_rootfs(readonly=True)
    (rootfs / "data").mkdir(exist_ok=True)
    (rootfs / "data" / "file").write_text("from-image\n")
    (rootfs / "data" / "sub").mkdir()
    (rootfs / "data" / "sub").chmod(0o750)
    (rootfs / "data" / "sub" / "deep").write_text("deep\n")
    os.chown(rootfs / "data" / "sub" / "deep", 1234, 5678)
    (rootfs / "data" / "link").symlink_to("file")
    bundle.add_mount("/data", "tmpfs", "tmpfs", ["tmpcopyup", "nosuid"])
    out = rt.sh(bundle, "cat /data/file /data/sub/deep; stat -c '%a' /data/sub; stat -c '%u:%g' /data/sub/deep; "
                        "readlink /data/link; echo new > /data/made; grep ' /data ' /proc/self/mounts | cut -d' ' -f3")
    assert out.split() == ["from-image", "deep", "750", "1234:5678", "file", "tmpfs"]
    assert not (rootfs / "data" / "made").exists()  # the writes went to the tmpfs


def test_tmpfs_on_an_existing_directory_takes_its_mode(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    rootfs = bundle.private_rootfs(readonly=True)
    (rootfs / "kept").mkdir()
    (rootfs / "kept").chmod(0o750)
    bundle.add_mount("/kept", "tmpfs", "tmpfs", ["nosuid"])
    bundle.add_mount("/fresh", "tmpfs", "tmpfs", ["nosuid"])
    bundle.add_mount("/given", "tmpfs", "tmpfs", ["mode=700"])
    bundle.sh("stat -c '%a' /kept /fresh /given")
    if HAVE_RUNC:  # first, on the image as it is (pyoci's run leaves /fresh and /given behind)
        theirs = runc_run(bundle, tmp_path / "runc-root")
        assert theirs.returncode == 0 and theirs.stdout.split()[0] == "750", theirs.stderr
        for d in ("fresh", "given"):
            (rootfs / d).rmdir()
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["750", "1777", "700"]  # mode= wins, as at runc HEAD (1.1 chmods after it)


def test_recursive_mount_attributes(rt: Runtime, bundle: Bundle, short_tmp: Path) -> None:
    bundle.private_rootfs(readonly=True)
    src = short_tmp / "src"
    src.mkdir()
    with host_tmpfs(src / "sub"):
        bundle.add_mount("/ro", "bind", str(src), ["rbind", "rro", "rnoatime", "rnosuid"])
        bundle.add_mount("/plain", "bind", str(src), ["rbind", "ro"])
        bundle.sh("cat /proc/self/mountinfo; touch /ro/sub/x 2>/dev/null && echo wrote-ro; "
                  "touch /plain/sub/y 2>/dev/null && echo wrote-plain")
        r = rt.run(bundle)
        assert r.returncode == 0, r.stderr
        opts = mountinfo_options(r.stdout)
        for m in ("/ro", "/ro/sub"):
            assert {"ro", "noatime", "nosuid"} <= opts[m], (m, opts[m])
        assert "ro" in opts["/plain"] and "ro" not in opts["/plain/sub"]  # plain ro is the top mount's only
        assert "wrote-ro" not in r.stdout and "wrote-plain" in r.stdout
        (src / "sub" / "y").unlink()


def test_recursive_atime_options_pick_one_mode(rt: Runtime, bundle: Bundle, short_tmp: Path) -> None:
    bundle.private_rootfs(readonly=True)
    bundle.add_mount("/a", "bind", str(short_tmp), ["rbind", "rnoatime", "rstrictatime"])
    bundle.add_mount("/b", "bind", str(short_tmp), ["rbind", "rnoatime", "rnodiratime", "rdiratime"])
    bundle.args("cat", "/proc/self/mountinfo")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    opts = mountinfo_options(r.stdout)
    assert not opts["/a"] & {"noatime", "relatime"}  # strictatime: the last word wins
    assert "noatime" in opts["/b"] and "nodiratime" not in opts["/b"]


def test_idmap_mount_with_its_own_mappings(rt: Runtime, bundle: Bundle, short_tmp: Path) -> None:
    short_tmp.chmod(0o755)  # mapped to uid 1000, the container's root (no CAP_DAC_OVERRIDE) must traverse it
    (short_tmp / "f").write_text("x")
    os.chown(short_tmp / "f", 0, 0)
    bundle.private_rootfs(readonly=True)
    m = bundle.add_mount("/mapped", "bind", str(short_tmp), ["rbind", "idmap"])
    m["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    m["gidMappings"] = [{"containerID": 0, "hostID": 2000, "size": 10}]
    bundle.add_mount("/plain", "bind", str(short_tmp), ["rbind"])
    out = rt.sh(bundle, "stat -c '%u:%g' /mapped/f /plain/f")
    assert out.split() == ["1000:2000", "0:0"]
    assert os.stat(short_tmp / "f").st_uid == 0  # the files are not chowned


def test_idmap_without_mappings_takes_the_container_user_namespace(rt: Runtime, ubundle: Bundle) -> None:
    data = ubundle.path.parent / "data"
    data.mkdir()
    (data / "f").write_text("x")  # owned by the host's root
    rootfs = ubundle.private_rootfs(readonly=True)
    for d in ("mapped", "plain"):  # the container's root (host uid 100000) cannot mkdir in a root-owned rootfs
        (rootfs / d).mkdir()
    ubundle.set_namespace("user")
    ubundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ubundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ubundle.add_mount("/mapped", "bind", str(data), ["rbind", "ridmap"])
    ubundle.add_mount("/plain", "bind", str(data), ["rbind"])
    out = rt.sh(ubundle, "stat -c '%u' /mapped/f /plain/f; echo w > /mapped/g && echo wrote")
    assert out.split() == ["0", "65534", "wrote"]  # the container's root owns it through the mapping
    assert os.stat(data / "g").st_uid == 0  # written as the host's root, seen from the host


@pytest.mark.parametrize("mount, needle", [
    ({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}, "only supported for bind"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}, "uidMappings"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["rbind"],
      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}, "both uidMappings and gidMappings"),
])
def test_idmap_mistakes_are_one_line_errors(rt: Runtime, bundle: Bundle, mount: dict, needle: str) -> None:
    bundle.config["mounts"].append(mount)
    assert needle in rt.refuse(bundle)


def test_dev_readonly_after_its_submounts(rt: Runtime, bundle: Bundle) -> None:
    dev = next(m for m in bundle.config["mounts"] if m["destination"] == "/dev")
    dev["options"] = dev["options"] + ["ro"]
    out = rt.sh(bundle, "ls -d /dev/pts /dev/shm /dev/mqueue; [ -c /dev/null ] && echo null; "
                        "touch /dev/x 2>&1 || true; grep ' /dev ' /proc/self/mounts | cut -d' ' -f4")
    assert "/dev/pts" in out and "/dev/mqueue" in out and "null" in out
    assert "Read-only file system" in out
    assert out.split()[-1].startswith("ro,")


def test_destination_given_as_a_host_path_under_the_rootfs(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "f").write_text("vol\n")
    rootfs = bundle.private_rootfs(readonly=True)  # root.path relative: the prefix is the bundle's rootfs
    bundle.add_mount(str(rootfs) + "/mnt/in", "bind", str(tmp_path / "vol"), ["rbind"])
    assert rt.sh(bundle, "cat /mnt/in/f") == "vol\n"


def test_bind_onto_a_dangling_symlink_makes_its_target(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    rootfs = bundle.private_rootfs(readonly=False)
    (rootfs / "etc" / "app.conf").symlink_to("/etc/real/app.conf")
    (tmp_path / "conf").write_text("conf\n")
    bundle.add_mount("/etc/app.conf", "bind", str(tmp_path / "conf"), ["bind"])
    bundle.sh("cat /etc/app.conf /etc/real/app.conf")
    if HAVE_RUNC:  # first, on the image as it is
        theirs = runc_run(bundle, tmp_path / "runc-root")
        assert theirs.returncode == 0 and theirs.stdout == "conf\nconf\n", theirs.stderr
        (rootfs / "etc" / "real" / "app.conf").unlink()
        (rootfs / "etc" / "real").rmdir()
    assert rt.sh(bundle, "cat /etc/app.conf /etc/real/app.conf") == "conf\nconf\n"
    assert (rootfs / "etc" / "real" / "app.conf").is_file()


def test_userns_bind_source_the_container_cannot_reach(rt: Runtime, ubundle: Bundle) -> None:
    """The source is under a root-only directory: opened by the host's root before the user namespace."""
    secret = ubundle.path.parent / "secret"
    (secret / "data").mkdir(parents=True)
    secret.chmod(0o700)
    (secret / "data" / "f").write_text("reached\n")
    ubundle.private_rootfs(readonly=True)
    ubundle.set_namespace("user")
    ubundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ubundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    ubundle.add_mount("/data", "bind", str(secret / "data"), ["rbind", "ro"])
    ubundle.add_mount("/tmp/file", "bind", str(secret / "data" / "f"), ["bind"])  # /tmp: 1777 in the image
    assert rt.sh(ubundle, "cat /data/f /tmp/file; grep ' /data ' /proc/self/mounts | cut -d' ' -f4") \
        .split("\n")[:2] == ["reached", "reached"]


def test_rshared_root_propagation_reaches_the_host(rt: Runtime, bundle: Bundle, short_tmp: Path) -> None:
    """CRI's "mount propagation with rshared": a mount made inside an rshared volume shows on the host."""
    vol = short_tmp / "vol"
    vol.mkdir()
    subprocess.run(["mount", "--bind", str(vol), str(vol)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(vol)], check=True)
        bundle.private_rootfs(readonly=True)
        bundle.linux["rootfsPropagation"] = "rshared"
        bundle.add_mount("/vol", "bind", str(vol), ["rbind", "rshared"])
        caps = bundle.process["capabilities"]
        for k in ("bounding", "effective", "permitted"):
            caps[k] = caps.get(k, []) + ["CAP_SYS_ADMIN"]
        bundle.sh("mkdir -p /vol/inner && mount -t tmpfs inside /vol/inner && echo mounted")
        r = rt.run(bundle)
        assert r.returncode == 0 and "mounted" in r.stdout, r.stderr
        with open("/proc/self/mountinfo") as f:
            seen = [ln for ln in f if " %s/inner " % vol in ln]
        assert seen, "the mount made in the container did not propagate to the host"
        assert not [ln for ln in open("/proc/self/mountinfo") if str(bundle.path) in ln]  # the rootfs stays in
    finally:
        subprocess.run(["umount", "-R", "-l", str(vol)], capture_output=True)


def test_spec_has_a_cgroup_namespace_only_on_a_pure_v2_host(rt: Runtime, tmp_path: Path) -> None:
    rt.ok("spec", "--bundle", tmp_path)
    kinds = [n["type"] for n in json.loads((tmp_path / "config.json").read_text())["linux"]["namespaces"]]
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert ("cgroup" in kinds) == unified
    if HAVE_RUNC:
        (tmp_path / "runc").mkdir()
        subprocess.run([RUNC, "spec"], cwd=tmp_path / "runc", check=True)
        theirs = [n["type"] for n in json.loads((tmp_path / "runc" / "config.json").read_text())["linux"]["namespaces"]]
        assert sorted(theirs) == sorted(kinds)


# ------------------------------------------------------------------------------------------ terminals, process
def test_foreground_run_with_a_terminal_keeps_newlines(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["terminal"] = True
    bundle.sh("echo one; echo two")
    r = rt.run(bundle, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "one\ntwo\n"


@pytest.mark.parametrize("exec_", [False, True])
def test_the_terminal_belongs_to_the_process_user(rt: Runtime, bundle: Bundle, exec_: bool) -> None:
    bundle.process["terminal"] = True
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    script = "stat -c '%u %g %a' $(tty); echo hi > /dev/tty && echo tty-writable"
    if not exec_:
        bundle.sh(script)
        r = rt.run(bundle, timeout=30)
    else:
        bundle.process["terminal"] = False
        bundle.args("sleep", "30")
        cid = rt.create(bundle)
        try:
            rt.ok("start", cid)
            r = rt.cmd("exec", "-t", "--user", "1000:1000", cid, "sh", "-c", script, timeout=30)
        finally:
            rt.delete(cid)
    assert r.returncode == 0, r.stderr
    assert "1000 5 620" in r.stdout and "tty-writable" in r.stdout, r.stdout


def test_empty_home_is_taken_as_unset(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.process["env"] = bundle.process["env"] + ["HOME="]
    bundle.sh('echo "home=$HOME"')
    ours, theirs = both(rt, bundle, tmp_path)
    assert ours == "home=/root\n"
    assert theirs is None or theirs == ours


def test_exec_cap_adds_to_the_ambient_set(rt: Runtime, bundle: Bundle) -> None:
    caps = bundle.process["capabilities"]
    caps["inheritable"] = ["CAP_NET_ADMIN"]
    caps["bounding"] = caps["bounding"] + ["CAP_NET_ADMIN"]
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    try:
        rt.ok("start", cid)
        out = rt.ok("exec", "--cap", "CAP_NET_ADMIN", "--user", "1000:1000", cid, "grep", "CapAmb",
                    "/proc/self/status").stdout
    finally:
        rt.delete(cid)
    assert int(out.split()[1], 16) & (1 << 12), out  # CAP_NET_ADMIN is 12


def test_loopback_is_up_in_a_new_network_namespace(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("cat", "/sys/class/net/lo/flags")
    ours, theirs = both(rt, bundle, tmp_path)
    assert int(ours, 16) & 0x1, ours  # IFF_UP
    assert theirs is None or theirs == ours


def test_hooks_cwd_and_environment(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    rootfs = bundle.private_rootfs(readonly=True)
    out = tmp_path / "out"
    out.mkdir()
    script = rootfs / "hook.sh"
    script.write_text("#!/bin/sh\necho \"$1 cwd=$(pwd) one=$ONE home=$HOME\" >> /out/hooks\n")
    script.chmod(0o755)
    bundle.bind(out, "/out")
    bundle.process["env"] = bundle.process["env"] + ["ONE=two"]
    bundle.hook("createContainer", "/bin/sh", "sh", "-c", "pwd > %s/cc-cwd" % out)
    bundle.hook("startContainer", "/hook.sh", "hook.sh", "start")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert (out / "cc-cwd").read_text().strip() == str(rootfs)
    assert (out / "hooks").read_text() == "start cwd=/ one=two home=/root\n"


def test_hook_failure_names_the_hook_as_runc_does(rt: Runtime, bundle: Bundle) -> None:
    bundle.hook("createRuntime", "/bin/true")
    bundle.hook("createRuntime", "/bin/false")
    assert "error running createRuntime hook #1:" in rt.refuse(bundle)


def test_a_capability_the_runtime_lacks_is_dropped_with_a_warning(rt: Runtime, bundle: Bundle) -> None:
    from pyoci.process import CAPABILITIES

    bounding = 0
    for line in open("/proc/self/status"):
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        top = int(f.read())
    lacking = [c for i, c in enumerate(CAPABILITIES[: top + 1]) if not bounding & (1 << i)]
    if not lacking:
        pytest.skip("this runtime's bounding set holds every capability")
    caps = bundle.process["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k] = list(CAPABILITIES[: top + 1])  # docker --privileged asks for all
    bundle.args("grep", "CapEff", "/proc/self/status")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert "not in the runtime's bounding set" in r.stderr and lacking[0] in r.stderr
    assert int(r.stdout.split()[1], 16) == bounding & ((1 << (top + 1)) - 1)


def test_cpuset_levels_above_the_container_are_filled(rt: Runtime, bundle: Bundle) -> None:
    parent = Path("/sys/fs/cgroup/cpuset")
    if not (parent / "cpuset.cpus").exists():
        pytest.skip("no cgroup v1 cpuset hierarchy here")
    name = "pyoci-test-%s" % uuid.uuid4().hex[:8]
    (parent / name).mkdir()
    try:
        assert (parent / name / "cpuset.cpus").read_text().strip() == ""
        cid = rt.new_id()
        bundle.linux["cgroupsPath"] = "/%s/%s" % (name, cid)
        bundle.args("true")
        r = rt.run(bundle, cid)
        assert r.returncode == 0, r.stderr
        assert (parent / name / "cpuset.cpus").read_text().strip() == (parent / "cpuset.cpus").read_text().strip()
    finally:
        for d in sorted(parent.glob(name + "/*"), reverse=True):
            if d.is_dir():
                d.rmdir()
        (parent / name).rmdir()


# ------------------------------------------------------------------------------------------ answers engines read
@pytest.mark.parametrize("make, words", [
    ("missing", "no such file or directory"),
    ("noexec", "permission denied"),
])
def test_exec_failures_carry_the_kernels_words(rt: Runtime, bundle: Bundle, make: str, words: str) -> None:
    rootfs = bundle.private_rootfs(readonly=True)
    if make == "noexec":
        (rootfs / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (rootfs / "run.sh").chmod(0o644)
    bundle.args("/run.sh")
    err = rt.refuse(bundle)
    assert "exec /run.sh: " + words in err, err


def test_a_bare_name_without_path_is_not_found(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["env"] = [e for e in bundle.process["env"] if not e.startswith("PATH=")]
    bundle.args("true")
    assert "executable file not found in $PATH" in rt.refuse(bundle)


def test_a_program_removed_before_start_fails_start_with_the_kernels_words(rt: Runtime, bundle: Bundle) -> None:
    rootfs = bundle.private_rootfs(readonly=False)
    (rootfs / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (rootfs / "run.sh").chmod(0o755)
    bundle.args("/run.sh")
    with rt.container(bundle) as cid:
        (rootfs / "run.sh").unlink()
        err = one_line_error(rt.cmd("start", cid))
        assert err.endswith("start %s: exec /run.sh: no such file or directory" % cid), err


def test_exec_failures_exit_255(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    try:
        rt.ok("start", cid)
        rt.ok("pause", cid)
        r = rt.cmd("exec", cid, "true")
        assert r.returncode == 255 and "cannot exec in a paused container" in r.stderr, r.stderr
        rt.ok("resume", cid)
        r = rt.cmd("exec", "--pid-file", str(tmp_path / "no" / "such" / "pid"), cid, "true")
        assert r.returncode == 255, r.stderr
        r = rt.cmd("exec", "nosuch-" + cid, "true")
        assert r.returncode == 255
        r = rt.cmd("exec", cid, "sh", "-c", "exit 3")
        assert r.returncode == 3  # the process's own code
    finally:
        rt.delete(cid)


def test_exec_logs_and_json_lines_are_compact(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    try:
        rt.ok("start", cid)
        rt.ok("--debug", "--log", log, "--log-format", "json", "exec", cid, "true")
        listed = rt.ok("list", "--format", "json").stdout.strip()
    finally:
        rt.delete(cid)
    lines = log.read_text().splitlines()
    assert lines and all(ln.startswith('{"level":"') for ln in lines), lines
    assert any("exec" in json.loads(ln)["msg"] and json.loads(ln)["level"] == "debug" for ln in lines)
    assert listed.startswith('[{"ociVersion":"') and '", "' not in listed


def test_version_has_a_commit_line(rt: Runtime) -> None:
    out = rt.ok("--version", root=False).stdout.splitlines()
    assert out[0].startswith("pyoci version ")
    assert out[1].startswith("commit: ") and len(out[1]) > len("commit: ")
    assert out[2].startswith("spec: ")
