"""process.*: args/PATH, env, cwd, user, umask, capabilities, noNewPrivileges, rlimits, oomScoreAdj, HOME, fds."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import Bundle, Runtime, pid_alive, wait_for

CAP = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
       "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29}


def mask(*names: str) -> int:
    out = 0
    for n in names:
        out |= 1 << CAP[n]
    return out


def status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


# ------------------------------------------------------------------------------------------ args, env, cwd
def test_args_resolved_in_the_containers_path(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    prog = d / "myprog"
    prog.write_text("#!/bin/sh\necho \"myprog $0 $*\"\n")
    prog.chmod(0o755)
    bundle.bind(d, "/data")
    bundle.process["env"] = ["PATH=/nothing-here:/data:/bin"]
    bundle.args("myprog", "a", "b")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "myprog /data/myprog a b\n"
    # not in the container's PATH (even though it exists on the host's): refused at create
    bundle.process["env"] = ["PATH=/bin"]
    bundle.save()
    line = rt.refuse(bundle)
    assert "myprog" in line


def test_args_with_absolute_and_relative_paths(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("/bin/echo", "absolute")
    assert rt.run(bundle).stdout == "absolute\n"
    bundle.process["cwd"] = "/bin"
    bundle.args("./echo", "relative")
    assert rt.run(bundle).stdout == "relative\n"


def test_env_is_exactly_process_env(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "HOME=/custom-home"]
    bundle.args("env")
    r = rt.run(bundle, env={**os.environ, "PYOCI_HOST_SECRET": "leaked"})
    assert r.returncode == 0, r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert env.pop("PWD", "/") == "/"
    assert env == {"PATH": "/bin", "FOO": "bar baz", "EMPTY": "", "HOME": "/custom-home"}


@pytest.mark.parametrize("uid,home", [(0, "/root"), (1, "/usr/sbin"), (4242, "/")])
def test_home_from_etc_passwd(rt: Runtime, bundle: Bundle, uid: int, home: str) -> None:
    bundle.process["env"] = ["PATH=/bin"]
    bundle.process["user"] = {"uid": uid, "gid": uid}
    assert rt.sh(bundle, 'echo "$HOME"') == home + "\n"


def test_cwd(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["cwd"] = "/etc"
    assert rt.sh(bundle, "pwd") == "/etc\n"


def test_missing_cwd_is_created(rt: Runtime, bundle: Bundle) -> None:
    rootfs = bundle.private_rootfs()
    bundle.process["cwd"] = "/work/deep/dir"
    assert rt.sh(bundle, "pwd") == "/work/deep/dir\n"
    assert (rootfs / "work" / "deep" / "dir").is_dir()


def test_cwd_that_is_a_file_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["cwd"] = "/etc/passwd"
    bundle.save()
    line = rt.refuse(bundle)
    assert "cwd" in line


# ------------------------------------------------------------------------------------------ user, umask
def test_user_uid_gid_additional_gids(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 100, 2000]}
    out = rt.sh(bundle, "id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    lines = out.splitlines()
    assert lines[0] == "1000" and lines[1] == "1001"
    st = status_fields("\n".join(lines[2:]))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1001"] * 4
    assert sorted(map(int, st["Groups"].split())) == [5, 100, 2000]


def test_root_has_no_supplementary_groups_by_default(rt: Runtime, bundle: Bundle) -> None:
    out = rt.sh(bundle, "grep Groups: /proc/self/status")
    assert out.split() == ["Groups:"]


@pytest.mark.parametrize("umask,expect", [(None, "0022"), (0o077, "0077"), (0, "0000")])
def test_umask(rt: Runtime, bundle: Bundle, umask: int | None, expect: str) -> None:
    if umask is not None:
        bundle.process["user"]["umask"] = umask
    assert rt.sh(bundle, "umask") == expect + "\n"


# ------------------------------------------------------------------------------------------ capabilities
def _caps(rt: Runtime, bundle: Bundle) -> dict[str, int]:
    st = status_fields(rt.sh(bundle, "grep -E '^(Cap|NoNewPrivs)' /proc/self/status"))
    return {k: int(v, 16) for k, v in st.items() if k.startswith("Cap")}


def test_capabilities_all_five_sets_non_root(rt: Runtime, bundle: Bundle) -> None:
    """A non-root user with no file capabilities: after exec permitted = effective = ambient (execve rules)."""
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_RAW"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"],
        "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
    }
    caps = _caps(rt, bundle)
    assert caps["CapBnd"] == mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_NET_RAW")
    assert caps["CapInh"] == mask("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID")
    assert caps["CapAmb"] == mask("CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps["CapPrm"] == mask("CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps["CapEff"] == mask("CAP_KILL", "CAP_NET_BIND_SERVICE")


def test_capabilities_root(rt: Runtime, bundle: Bundle) -> None:
    """Root: permitted = effective = bounding | inheritable after exec; the bounding set is exact."""
    bundle.process["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": [],
        "ambient": [],
    }
    caps = _caps(rt, bundle)
    expected = mask("CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert caps == {"CapInh": 0, "CapPrm": expected, "CapEff": expected, "CapBnd": expected, "CapAmb": 0}


def test_capabilities_are_enforced(rt: Runtime, bundle: Bundle) -> None:
    """Without CAP_SYS_ADMIN (or CAP_NET_ADMIN) root in the container cannot mount or set the hostname."""
    out = rt.sh(bundle, "mount -t tmpfs x /tmp 2>&1; hostname evil 2>&1; hostname")
    assert "denied" in out.lower() or "not permitted" in out.lower()
    assert out.splitlines()[-1] == "pyoci"


def test_no_capabilities_object_means_none(rt: Runtime, bundle: Bundle) -> None:
    del bundle.process["capabilities"]
    caps = _caps(rt, bundle)
    assert caps["CapEff"] == 0 and caps["CapPrm"] == 0 and caps["CapInh"] == 0 and caps["CapAmb"] == 0


def test_unknown_capability_is_not_fatal(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["capabilities"]["bounding"].append("CAP_FROM_THE_FUTURE")
    bundle.save()
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr  # runc ignores it with a warning
    assert "CAP_FROM_THE_FUTURE" in r.stderr and "level=warning" in r.stderr


@pytest.mark.parametrize("nnp,expect", [(True, "1"), (False, "0")])
def test_no_new_privileges(rt: Runtime, bundle: Bundle, nnp: bool, expect: str) -> None:
    bundle.process["noNewPrivileges"] = nnp
    out = rt.sh(bundle, "grep NoNewPrivs /proc/self/status")
    assert out.split() == ["NoNewPrivs:", expect]


# ------------------------------------------------------------------------------------------ rlimits, oom
def test_rlimits(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 1234, "hard": 5678},
        {"type": "RLIMIT_STACK", "soft": 18446744073709551615, "hard": 18446744073709551615},
    ]
    out = rt.sh(bundle, "ulimit -n; cat /proc/self/limits")
    lines = out.splitlines()
    assert lines[0] == "321"
    limits = {line[:26].strip(): line[26:].split()[:2] for line in lines[2:]}
    assert limits["Max open files"] == ["321", "654"]
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max processes"] == ["1234", "5678"]
    assert limits["Max stack size"] == ["unlimited", "unlimited"]


def test_unknown_rlimit_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    bundle.save()
    rt.refuse(bundle)


def test_rlimit_soft_above_hard_fails_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]
    bundle.save()
    rt.refuse(bundle)


def _has_cap(n: int) -> bool:
    with open("/proc/self/status") as f:
        eff = int(status_fields(f.read())["CapEff"], 16)
    return bool(eff & (1 << n))


@pytest.mark.parametrize("adj", [500, 0, -100])
def test_oom_score_adj(rt: Runtime, bundle: Bundle, adj: int) -> None:
    bundle.process["oomScoreAdj"] = adj
    with open("/proc/self/oom_score_adj") as f:
        ours = int(f.read())
    if adj < ours and not _has_cap(24):  # lowering needs CAP_SYS_RESOURCE, which this host does not give us
        bundle.save()
        line = rt.refuse(bundle)
        assert "oom" in line.lower(), line
        return
    assert rt.sh(bundle, "cat /proc/self/oom_score_adj") == "%d\n" % adj


# ------------------------------------------------------------------------------------------ file descriptors
def _shell_with_fds(rt: Runtime, redirects: str, *args: object, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run pyoci through sh so that exactly the given redirections (e.g. '3>f 4<g') are extra fds."""
    import tempfile

    cmd = 'exec "$@" %s' % redirects
    # files, not pipes: a created container keeps the caller's stdio open
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        rc = subprocess.run(["sh", "-c", cmd, "sh", *rt.argv(*args)], stdout=out, stderr=err, timeout=timeout,
                            stdin=subprocess.DEVNULL).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, rc, out.read(), err.read())


def test_preserve_fds_with_run(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    out3 = tmp_path / "fd3"
    in4 = tmp_path / "fd4"
    in4.write_text("from-fd4\n")
    bundle.sh("echo to-fd3 >&3; cat <&4; ls /proc/self/fd")
    bundle.save()
    r = _shell_with_fds(rt, "3>%s 4<%s" % (out3, in4), "run", "-b", bundle.path, "--preserve-fds", "2", rt.new_id())
    assert r.returncode == 0, r.stderr
    assert out3.read_text() == "to-fd3\n"
    assert r.stdout.splitlines()[0] == "from-fd4"


def test_preserve_fds_with_create_and_inherited_fds_closed(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    leak = tmp_path / "leak"
    keep.write_text("")
    leak.mkdir()
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    r = _shell_with_fds(rt, "3>%s 4<%s 5<%s" % (keep, leak, leak), "create", "-b", bundle.path,
                        "--preserve-fds", "1", cid)
    assert r.returncode == 0, r.stderr
    try:
        pid = rt.state(cid)["pid"]
        rt.ok("start", cid)
        wait_for(lambda: os.readlink("/proc/%d/exe" % pid).endswith("busybox"), what="exec")
        fds = sorted(int(f) for f in os.listdir("/proc/%d/fd" % pid))
        assert fds == [0, 1, 2, 3]
        assert os.readlink("/proc/%d/fd/3" % pid) == str(keep)
    finally:
        rt.ok("delete", "-f", cid)


def test_inherited_fds_are_not_visible(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """pyoci run with extra inheritable fds (a file, a host directory): the container sees only 0, 1, 2."""
    secret = tmp_path / "secret-dir"
    secret.mkdir()
    (secret / "marker").write_text("host secret\n")
    bundle.sh("sleep 30 & wait")
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    p = subprocess.Popen(["sh", "-c", 'exec "$@" 3<%s 7<%s 9>%s' % (secret, secret / "marker", tmp_path / "w"),
                          "sh", *rt.argv("run", "-b", bundle.path, cid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (rt.root / cid).exists() and rt.status(cid) == "running", what="running")
        pid = rt.state(cid)["pid"]
        assert pid_alive(pid)
        assert sorted(os.listdir("/proc/%d/fd" % pid)) == ["0", "1", "2"]
    finally:
        rt.cmd("kill", cid, "KILL")
        p.wait(20)


def test_socket_activation_fds_pass_through(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """systemd socket activation (runc's behaviour): with LISTEN_PID our pid and LISTEN_FDS=N, fds 3..3+N-1
    reach the container as its 3.., announced by LISTEN_FDS=N and LISTEN_PID=1; --preserve-fds come after."""
    (tmp_path / "act.txt").write_text("activation\n")
    (tmp_path / "pres.txt").write_text("preserved\n")
    bundle.sh('echo "$LISTEN_FDS $LISTEN_PID"; cat <&3; cat <&4; ls /proc/self/fd | sort -n | tr "\\n" " "')
    bundle.save()
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@" 3<%s 4<%s' % (tmp_path / "act.txt", tmp_path / "pres.txt")
    r = subprocess.run(["sh", "-c", script, "sh", *rt.argv("run", "--preserve-fds", "1", "-b", bundle.path,
                                                           rt.new_id())],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[:3] == ["1 1", "activation", "preserved"]
