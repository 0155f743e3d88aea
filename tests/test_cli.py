"""The runc-compatible command line: global flags, every command, and clean one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import PYOCI, Bundle, ConsoleSocket, Runtime, one_line_error, pid_alive, wait_for

COMMANDS = ("create", "start", "state", "kill", "delete", "run", "list", "spec")


# ------------------------------------------------------------------------------------------ help, version
def test_help_lists_every_command() -> None:
    r = subprocess.run(PYOCI + ["--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name in COMMANDS:
        assert name in r.stdout
    for flag in ("--root", "--log", "--log-format", "--debug"):
        assert flag in r.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help(name: str) -> None:
    r = subprocess.run(PYOCI + [name, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout


def test_unknown_command_and_flag_are_usage_errors() -> None:
    for argv in (["frobnicate"], ["--no-such-flag", "list"], ["create", "--no-such-flag", "x"], ["kill"]):
        r = subprocess.run(PYOCI + argv, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, argv
        assert "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------ global flags
def test_root_flag_keeps_state_in_that_directory(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        assert (rt.root / cid / "state.json").is_file()
        assert rt.ok("list", "-q").stdout.split() == [cid]
        other = Runtime(tmp_path / "other-root", tmp_path)
        assert other.ok("list", "-q").stdout.split() == []
        assert "does not exist" in other.fail("state", cid)
    assert not (rt.root / cid).exists()


def test_log_json_records_the_error(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "pyoci.log"
    cid = rt.new_id()
    r = rt.cmd("--log", log, "--log-format", "json", "state", cid)
    one_line_error(r)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "nothing logged"
    for rec in lines:
        assert {"level", "msg", "time"} <= set(rec), rec
        assert time.strptime(rec["time"][:19], "%Y-%m-%dT%H:%M:%S")
    errors = [rec for rec in lines if rec["level"] == "error"]
    assert len(errors) == 1 and cid in errors[0]["msg"]


def test_log_text_format(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "pyoci.log"
    one_line_error(rt.cmd("--log", log, "--log-format", "text", "kill", rt.new_id()))
    text = log.read_text()
    assert "level=error" in text and 'msg="' in text and 'time="' in text


def test_log_format_rejects_unknown_value(rt: Runtime) -> None:
    r = rt.cmd("--log-format", "xml", "list")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_debug_logs_debug_records(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    # the busybox config asks for ambient capabilities that are not inheritable: pyoci notes it at debug level
    quiet, loud = tmp_path / "quiet.log", tmp_path / "loud.log"
    bundle.save()
    r = rt.cmd("--log", quiet, "--log-format", "json", "run", "-b", bundle.path, rt.new_id())
    assert r.returncode == 0, r.stderr
    r = rt.cmd("--log", loud, "--log-format", "json", "--debug", "run", "-b", bundle.path, rt.new_id())
    assert r.returncode == 0, r.stderr

    def levels(p: Path) -> set[str]:
        return {json.loads(line)["level"] for line in p.read_text().splitlines()} if p.exists() else set()

    assert "debug" not in levels(quiet)
    assert "debug" in levels(loud)


@pytest.mark.parametrize("flags,words", [(["--systemd-cgroup"], "systemd is not running on this host"),
                                         (["--rootless", "true"], "not supported")])
def test_unsupported_global_flags_fail_with_one_line(rt: Runtime, bundle: Bundle, flags: list[str],
                                                     words: str) -> None:
    """Here (no systemd as PID 1) the systemd driver is a one-line error naming the reason, nothing made."""
    bundle.save()
    cid = rt.new_id()
    line = rt.fail(*flags, "create", "-b", bundle.path, cid)
    assert words in line
    assert not (rt.root / cid).exists()


def test_rootless_false_and_auto_are_accepted(rt: Runtime) -> None:
    rt.ok("--rootless", "false", "list")
    rt.ok("--rootless", "auto", "list")


# ------------------------------------------------------------------------------------------ spec
def test_spec_writes_a_runnable_default(rt: Runtime, tmp_path: Path, rootfs: Path, console: ConsoleSocket) -> None:
    d = tmp_path / "specbundle"
    d.mkdir()
    shutil.copytree(rootfs, d / "rootfs", symlinks=True)
    r = subprocess.run(PYOCI + ["spec"], cwd=d, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    config = json.loads((d / "config.json").read_text())
    assert config["process"]["terminal"] is True
    assert config["root"]["path"] == "rootfs"
    assert config["ociVersion"]
    # runc-style: terminal true needs a console socket; then create accepts it
    cid = rt.new_id()
    rt.ok("create", "-b", d, "--console-socket", console.path, cid)
    try:
        master = console.receive()
        try:
            assert rt.status(cid) == "created"
        finally:
            os.close(master)
    finally:
        rt.ok("delete", "--force", cid)


def test_spec_bundle_flag_and_refuses_to_overwrite(tmp_path: Path) -> None:
    d = tmp_path / "b"
    d.mkdir()
    r = subprocess.run(PYOCI + ["spec", "--bundle", str(d)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    before = (d / "config.json").read_bytes()
    json.loads(before)
    r = subprocess.run(PYOCI + ["spec", "-b", str(d)], capture_output=True, text=True, timeout=30)
    line = one_line_error(r)
    assert "exists" in line
    assert (d / "config.json").read_bytes() == before


def test_spec_rootless(tmp_path: Path) -> None:
    r = subprocess.run(PYOCI + ["spec", "--rootless", "-b", str(tmp_path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    kinds = [n["type"] for n in config["linux"]["namespaces"]]
    assert "user" in kinds and "network" not in kinds
    assert config["linux"]["uidMappings"][0]["hostID"] == os.geteuid()
    assert config["linux"]["gidMappings"][0]["hostID"] == os.getegid()


def test_spec_output_is_valid_for_runc(tmp_path: Path) -> None:
    """runc (the oracle) reads pyoci's default spec without complaint."""
    if not Path("/usr/sbin/runc").exists():
        pytest.skip("no runc")
    subprocess.run(PYOCI + ["spec", "-b", str(tmp_path)], check=True, capture_output=True, timeout=30)
    ours = json.loads((tmp_path / "config.json").read_text())
    ref = tmp_path / "ref"
    ref.mkdir()
    subprocess.run(["/usr/sbin/runc", "spec", "-b", str(ref)], check=True, capture_output=True, timeout=30)
    theirs = json.loads((ref / "config.json").read_text())
    assert ours["process"]["terminal"] == theirs["process"]["terminal"]
    assert ours["root"] == theirs["root"]
    assert {m["destination"] for m in ours["mounts"]} == {m["destination"] for m in theirs["mounts"]}


# ------------------------------------------------------------------------------------------ state, list
def test_state_is_the_oci_state(rt: Runtime, bundle: Bundle) -> None:
    bundle.config["annotations"] = {"org.example.key": "value"}
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        st = rt.state(cid)
        assert st["ociVersion"]
        assert st["id"] == cid
        assert st["status"] == "created"
        assert isinstance(st["pid"], int) and st["pid"] > 1 and pid_alive(st["pid"])
        assert st["bundle"] == str(bundle.path)
        assert st["annotations"] == {"org.example.key": "value"}


def test_list_formats(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    a, b = rt.new_id("a"), rt.new_id("b")
    with rt.container(bundle, cid=a), rt.container(bundle, cid=b):
        rt.ok("start", b)
        assert sorted(rt.ok("list", "-q").stdout.split()) == sorted([a, b])
        table = rt.ok("list").stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
        rows = {line.split()[0]: line.split() for line in table[1:]}
        assert rows[a][2] == "created" and rows[b][2] == "running"
        data = json.loads(rt.ok("list", "--format", "json").stdout)
        by_id = {c["id"]: c for c in data}
        assert set(by_id) == {a, b}
        assert by_id[a]["status"] == "created" and by_id[b]["status"] == "running"
        assert by_id[b]["pid"] == rt.state(b)["pid"]
        assert by_id[a]["bundle"] == str(bundle.path)


def test_list_empty_root(rt: Runtime) -> None:
    assert rt.ok("list", "-q").stdout == ""
    assert json.loads(rt.ok("list", "-f", "json").stdout) in ([], None)


# ------------------------------------------------------------------------------------------ kill, delete
@pytest.mark.parametrize("sig,expect", [(None, signal.SIGTERM), ("KILL", signal.SIGKILL),
                                        ("SIGKILL", signal.SIGKILL), ("9", signal.SIGKILL),
                                        ("usr1", signal.SIGUSR1), ("SIGHUP", signal.SIGHUP)])
def test_kill_signal_spellings(rt: Runtime, bundle: Bundle, sig: str | None, expect: int) -> None:
    """The container's init exits with 128+N for the signal it got (sh traps it and reports)."""
    out = bundle.path.parent / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    n = int(expect)
    # a trap for catchable signals records which one arrived; SIGKILL just ends the process
    bundle.sh("trap 'echo %d > /out/sig; exit 0' %d; echo ready > /out/ready; while :; do sleep 0.05; done" % (n, n))
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        pid = rt.state(cid)["pid"]
        wait_for(lambda: (out / "ready").exists(), what="container ready")
        rt.ok("kill", cid, *([sig] if sig else []))
        wait_for(lambda: not pid_alive(pid), what="init to exit")
        if expect != signal.SIGKILL:
            assert (out / "sig").read_text().strip() == str(n)
        assert rt.status(cid) == "stopped"


def test_kill_bad_signal(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        for bad in ("NOTASIGNAL", "SIGFOO", "999", "-3"):
            r = rt.cmd("kill", cid, bad)
            assert r.returncode != 0, bad
            assert "Traceback" not in r.stderr
        assert rt.status(cid) == "created"


def test_delete_requires_stopped_unless_forced(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    pid = rt.state(cid)["pid"]
    line = rt.fail("delete", cid)
    assert "running" in line
    assert rt.status(cid) == "running" and pid_alive(pid)
    rt.ok("delete", "--force", cid)
    assert not pid_alive(pid)
    assert "does not exist" in rt.fail("state", cid)


def test_delete_force_of_unknown_id_succeeds(rt: Runtime) -> None:
    rt.ok("delete", "-f", rt.new_id())


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv", [["start", "{id}"], ["state", "{id}"], ["kill", "{id}"], ["kill", "{id}", "KILL"],
                                  ["kill", "--all", "{id}", "9"], ["delete", "{id}"]])
def test_unknown_id(rt: Runtime, argv: list[str]) -> None:
    cid = rt.new_id()
    line = rt.fail(*[a.replace("{id}", cid) for a in argv])
    assert cid in line and "not exist" in line


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "-dash", "", "x" * 2000, "a b", "..", "."])
def test_invalid_id(rt: Runtime, bundle: Bundle, bad: str) -> None:
    bundle.save()
    for cmd in (["create", "-b", str(bundle.path)], ["run", "-b", str(bundle.path)], ["state"], ["delete"]):
        r = rt.cmd(*cmd, "--", bad) if bad.startswith("-") else rt.cmd(*cmd, bad)
        assert r.returncode != 0, (cmd, bad)
        assert "Traceback" not in r.stderr
    assert not rt.root.exists() or os.listdir(rt.root) == []
    assert not (bundle.path.parent / "x").exists()


def test_missing_bundle(rt: Runtime, tmp_path: Path) -> None:
    cid = rt.new_id()
    line = rt.fail("create", "-b", tmp_path / "nope", cid)
    assert "nope" in line
    line = rt.fail("run", "-b", tmp_path / "nope", cid)
    assert "nope" in line
    (tmp_path / "empty").mkdir()
    line = rt.fail("create", "-b", tmp_path / "empty", cid)
    assert "config.json" in line


@pytest.mark.parametrize("mangle", ["{not json", "[]", '{"ociVersion": "1.0.2"}',
                                    "process_args_not_list", "no_root", "no_mount_ns", "bad_ns_type"])
def test_bad_config(rt: Runtime, bundle: Bundle, mangle: str) -> None:
    if mangle == "process_args_not_list":
        bundle.process["args"] = "sh"
    elif mangle == "no_root":
        del bundle.config["root"]
    elif mangle == "no_mount_ns":
        bundle.drop_namespace("mount")
    elif mangle == "bad_ns_type":
        bundle.linux["namespaces"].append({"type": "bogus"})
    bundle.save()
    if mangle.startswith(("{", "[")):
        (bundle.path / "config.json").write_text(mangle)
    cid = rt.new_id()
    r = rt.cmd("create", "-b", bundle.path, cid)  # not rt.refuse: that would save a good config
    if r.returncode == 0:
        rt.cmd("delete", "-f", cid)
    one_line_error(r)
    rt.fail("run", "-b", bundle.path, cid)


def test_args0_not_found_fails_at_create(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("no-such-program", "x")
    bundle.save()
    cid = rt.new_id()
    line = rt.refuse(bundle, cid=cid)
    assert "no-such-program" in line
    r = rt.run(bundle, cid)
    one_line_error(r)
    assert r.returncode != 0


def test_args0_not_executable(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("/etc/passwd")
    bundle.save()
    rt.refuse(bundle)


def test_existing_id(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        line = rt.refuse(bundle, cid=cid)
        assert "exists" in line
        line = rt.fail("run", "-b", bundle.path, cid)
        assert "exists" in line
        st = rt.state(cid)
        assert st["status"] == "created" and st["pid"] == pid


def test_start_twice_and_start_stopped(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        line = rt.fail("start", cid)
        assert "running" in line
        rt.ok("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        assert "stopped" in rt.fail("start", cid)


def test_kill_stopped_fails(rt: Runtime, bundle: Bundle) -> None:
    with rt.container(bundle) as cid:  # args: true
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped")
        line = rt.fail("kill", cid, "KILL")
        assert "stopped" in line
        rt.ok("delete", cid)


def test_create_with_negative_preserve_fds(rt: Runtime, bundle: Bundle) -> None:
    bundle.save()
    rt.refuse(bundle, "--preserve-fds", "-1")


def test_console_socket_without_terminal_is_refused(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    bundle.save()
    cid = rt.new_id()
    rt.refuse(bundle, "--console-socket", console.path, cid=cid)


# ------------------------------------------------------------------------------------------ keyring
@pytest.mark.parametrize("flag", [False, True])
def test_session_keyring(rt: Runtime, bundle: Bundle, flag: bool) -> None:
    """Like runc: a new session keyring named _ses.<id> unless --no-new-keyring (then the caller's is kept)."""
    if not os.path.exists("/proc/keys"):
        pytest.skip("no /proc/keys (CONFIG_KEYS off)")
    bundle.linux["maskedPaths"] = [p for p in bundle.linux["maskedPaths"] if p != "/proc/keys"]
    bundle.args("cat", "/proc/keys")
    cid = rt.new_id()
    r = rt.run(bundle, cid, *(["--no-new-keyring"] if flag else []))
    assert r.returncode == 0, r.stderr
    names = [line.split()[8].rstrip(":") for line in r.stdout.splitlines() if len(line.split()) > 8]
    if flag:
        assert "_ses.%s" % cid not in names
    else:
        assert "_ses.%s" % cid in names, r.stdout


def _imported(rt: Runtime, *args: str, **kw: Any) -> set[str]:
    """Modules a CLI invocation imports (python -X importtime), whatever its outcome."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "pyoci", "--root", str(rt.root), *args],
                       capture_output=True, text=True, timeout=60, **kw)
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


def test_hot_path_imports_stay_cheap(rt: Runtime, bundle: Bundle) -> None:
    """Every container pays the runtime's start-up: the lifecycle commands must not import click, jsonschema,
    or the json/re/enum/socket/signal packages (their C modules are used instead). A speed target is a
    benchmark's job (bench/); this only guards against a heavy import creeping back."""
    heavy = {"click", "jsonschema", "referencing", "json", "re", "enum", "socket", "signal", "dataclasses",
             "typing", "subprocess"}
    assert not heavy & _imported(rt, "state", "no-such-container")
    bundle.args("true")
    bundle.save()
    cid = rt.new_id()
    assert not heavy & _imported(rt, "run", "-b", str(bundle.path), cid)


@pytest.mark.parametrize("field", ["apparmorProfile", "selinuxLabel"])
def test_lsm_labels_are_refused_not_ignored(rt: Runtime, bundle: Bundle, field: str) -> None:
    """pyoci does not apply LSM labels yet: running without the profile asked for would be weaker, so no."""
    bundle.process[field] = "some-profile"
    bundle.save()
    line = rt.refuse(bundle)
    assert "process.%s" % field in line and "not applied" in line


@pytest.mark.parametrize("words, cword, want", [
    (["pyoci", "ev"], 1, {"events"}),
    (["pyoci", "exec", "--pidf"], 2, {"--pidfd-socket"}),
    (["pyoci", "--log-f"], 1, {"--log-format"}),
    (["pyoci", "features", "--"], 2, {"--host", "--help"}),
])
def test_bash_completion_from_the_click_interface(words: list[str], cword: int, want: set[str],
                                                 tmp_path: Path) -> None:
    """`source <(pyoci completion bash)` completes commands and every flag (the same tables as --help)."""
    script = ('source <(pyoci completion bash); COMP_WORDS=(%s); COMP_CWORD=%d; _pyoci_completion pyoci; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % (" ".join(words), cword))
    wrapper = tmp_path / "pyoci"  # the completion function calls `pyoci` by name
    wrapper.write_text("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(PYOCI))
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ.get("PATH", "")))
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert want <= set(r.stdout.split()), r.stdout


def test_completion_scripts_for_zsh_and_fish_and_a_bad_shell() -> None:
    for shell, marker in (("zsh", "#compdef pyoci"), ("fish", "function _pyoci_completion")):
        r = subprocess.run(PYOCI + ["completion", shell], capture_output=True, text=True)
        assert r.returncode == 0 and marker in r.stdout and "_PYOCI_COMPLETE" in r.stdout, r.stdout
    r = subprocess.run(PYOCI + ["completion", "tcsh"], capture_output=True, text=True)
    assert r.returncode == 2 and one_line_error(r) == "pyoci: completion: SHELL must be bash, zsh or fish, not 'tcsh'"
