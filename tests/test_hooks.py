"""Lifecycle hooks: moment and order, state on stdin, args/env/timeout, namespaces, fatal and non-fatal failures."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import Bundle, Runtime, one_line_error, pid_alive, wait_for

HOST_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
RECORD = """#!/bin/sh
# append: KIND <state json> ns=<mount ns> argv0=<$0> env=<env, space separated>
printf '%s %s ns=%s env=%s\\n' "$1" "$(cat)" "$(readlink /proc/self/ns/mnt)" "$(env | sort | tr '\\n' ' ')" >> "$LOG"
"""


class Hooks:
    """A host dir bind-mounted at /hooks: record.sh (used by host hooks and, at /hooks/record.sh, by
    startContainer hooks inside the container) appends one line per call to log."""

    def __init__(self, bundle: Bundle, tmp_path: Path) -> None:
        self.dir = tmp_path / "hooks"
        self.dir.mkdir()
        self.log = self.dir / "log"
        self.script = self.dir / "record.sh"
        self.script.write_text(RECORD)
        self.script.chmod(0o755)
        self.bundle = bundle
        bundle.bind(self.dir, "/hooks")

    def add(self, kind: str, script: Path | str | None = None, *args: str, env: list[str] | None = None,
            timeout: int | None = None) -> None:
        inside = kind == "startContainer"
        if script is None:
            script = "/hooks/record.sh" if inside else str(self.script)
            args = args or (os.path.basename(str(script)), kind)
            log = "/hooks/log" if inside else str(self.log)
            env = (env or []) + ["LOG=" + log]
        self.bundle.hook(kind, str(script), *args, env=env, timeout=timeout)

    def add_all(self) -> None:
        for kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"):
            self.add(kind)

    def script_file(self, name: str, body: str) -> Path:
        p = self.dir / name
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(0o755)
        return p

    def records(self) -> list[tuple[str, dict, str, str]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            kind, rest = line.split(" ", 1)
            state_text, _, rest = rest.partition(" ns=")
            ns, _, env = rest.partition(" env=")
            out.append((kind, json.loads(state_text), ns, env))
        return out

    def kinds(self) -> list[str]:
        return [r[0] for r in self.records()]


@pytest.fixture
def hooks(bundle: Bundle, tmp_path: Path) -> Hooks:
    return Hooks(bundle, tmp_path)


def test_hooks_run_in_order_at_their_moment(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    hooks.add_all()
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    try:
        assert hooks.kinds() == ["prestart", "createRuntime", "createContainer"]
        rt.ok("start", cid)
        assert hooks.kinds() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"]
        rt.ok("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        assert len(hooks.kinds()) == 5
        rt.ok("delete", cid)
        assert hooks.kinds() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                                 "poststop"]
    finally:
        rt.cmd("delete", "-f", cid)


def test_hooks_get_the_state_on_stdin(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    hooks.add_all()
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        rt.ok("start", cid)
    records = {r[0]: r[1] for r in hooks.records()}
    assert set(records) == {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                            "poststop"}
    for kind, st in records.items():
        assert st["id"] == cid, kind
        assert st["bundle"] == str(bundle.path), kind
        assert st["ociVersion"], kind
    for kind in ("prestart", "createRuntime", "poststart"):
        assert records[kind]["pid"] == pid, kind
    for kind in ("prestart", "createRuntime", "createContainer"):
        assert records[kind]["status"] == "creating", kind
    assert records["startContainer"]["status"] == "created"
    assert records["poststart"]["status"] in ("created", "running")
    assert records["poststop"]["status"] == "stopped"


def test_hook_namespaces(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    """createContainer and startContainer run in the container's mount namespace; the others on the host's."""
    hooks.add_all()
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        container_ns = os.readlink("/proc/%d/ns/mnt" % pid)
        rt.ok("start", cid)
    host_ns = os.readlink("/proc/self/ns/mnt")
    ns = {r[0]: r[2] for r in hooks.records()}
    assert container_ns != host_ns
    assert ns["createContainer"] == container_ns
    assert ns["startContainer"] == container_ns
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert ns[kind] == host_ns, kind


def test_start_container_hook_runs_after_pivot(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    """Its path exists only inside the rootfs: /hooks is a bind mount, there is no /hooks on the host."""
    assert not Path("/hooks/record.sh").exists()
    hooks.add("startContainer")
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        assert hooks.kinds() == ["startContainer"]


def test_hook_args_and_env(rt: Runtime, bundle: Bundle, hooks: Hooks, tmp_path: Path) -> None:
    out = tmp_path / "args"
    script = hooks.script_file("args.sh", 'echo "argv0=$0 args=$* env=$(env | sort | tr "\\n" " ")" > %s' % out)
    bundle.hook("prestart", str(script), "custom-argv0", "one", "two words", env=["FOO=bar", "X=1"])
    with rt.container(bundle):
        text = out.read_text()
    assert "args=one two words" in text
    assert "FOO=bar" in text and "X=1" in text
    assert "PYTEST" not in text and "HOSTNAME=" not in text, "the runtime's environment leaked into the hook"


def test_hook_timeout(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    script = hooks.script_file("slow.sh", "sleep 20")
    bundle.hook("createRuntime", str(script), timeout=1)
    bundle.save()
    cid = rt.new_id()
    t0 = time.monotonic()
    line = rt.refuse(bundle, cid=cid)
    assert time.monotonic() - t0 < 10
    assert "createRuntime" in line and "time" in line
    assert "does not exist" in rt.fail("state", cid)


def test_hook_within_timeout_succeeds(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    script = hooks.script_file("quick.sh", "sleep 0.1")
    bundle.hook("prestart", str(script), timeout=5)
    with rt.container(bundle) as cid:
        assert rt.status(cid) == "created"


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(rt: Runtime, bundle: Bundle, hooks: Hooks,
                                                             tmp_path: Path, kind: str) -> None:
    pidfile = tmp_path / "pid"
    # record the init's pid (from the state on stdin), then fail
    script = hooks.script_file("fail.sh", "sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p' > %s; "
                                          "echo hook-says-no >&2; exit 3" % pidfile)
    bundle.hook(kind, str(script))
    hooks.add("poststop")
    cid = rt.new_id()
    line = rt.refuse(bundle, "--pid-file", tmp_path / "init.pid", cid=cid)
    assert kind in line
    assert not (tmp_path / "init.pid").exists(), "a pid file for a container that does not exist"
    assert "does not exist" in rt.fail("state", cid)
    assert hooks.kinds() == ["poststop"], "runtime-spec 1.3.0 step 13: the poststop hooks run after a failed hook"
    pid = pidfile.read_text().strip()
    if pid and kind != "createContainer":  # createContainer sees the pid in the host's namespace too
        wait_for(lambda: not pid_alive(int(pid)), what="the init to be gone")


def test_failing_start_container_hook_fails_start(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    """runtime-spec 1.3.0: an error, the container stopped and destroyed (step 12), the poststop hooks run."""
    (hooks.dir / "fail.sh").write_text("#!/bin/sh\nexit 1\n")
    (hooks.dir / "fail.sh").chmod(0o755)
    bundle.hook("startContainer", "/hooks/fail.sh")
    hooks.add("poststart")
    hooks.add("poststop")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        line = rt.fail("start", cid)
        assert "startContainer" in line
        assert not pid_alive(pid)
        assert "does not exist" in rt.fail("state", cid)
        assert hooks.kinds() == ["poststop"]


def test_missing_hook_binary_fails_create(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.hook("prestart", str(tmp_path / "no-such-hook"))
    bundle.save()
    cid = rt.new_id()
    rt.refuse(bundle, cid=cid)
    assert "does not exist" in rt.fail("state", cid)


def test_failing_poststart_stops_and_destroys_the_container(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    """runtime-spec 1.3.0 step 9 (1.2 said warn): an error, the container stopped and destroyed, the later
    poststart hooks not run, the poststop hooks run."""
    script = hooks.script_file("fail.sh", "echo nope >&2; exit 1")
    bundle.hook("poststart", str(script))
    hooks.add("poststart")
    hooks.add("poststop")
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        r = rt.cmd("start", cid)
        assert r.returncode != 0
        assert one_line_error(r) == "pyoci: error running poststart hook #0: %s: exit status 1: nope" % script
        assert not pid_alive(pid)
        assert "does not exist" in rt.fail("state", cid)
        assert hooks.kinds() == ["poststop"]
    bundle.args("true")  # with run: the same, and run's exit status says so
    assert rt.run(bundle, None).returncode != 0


def test_failing_poststop_only_warns(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    script = hooks.script_file("fail.sh", "exit 1")
    bundle.hook("poststop", str(script))
    hooks.add("poststop")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.wait_status(cid, "stopped")
    r = rt.cmd("delete", cid)
    assert r.returncode == 0, r.stderr
    assert "poststop" in r.stderr
    assert "does not exist" in rt.fail("state", cid)
    assert hooks.kinds() == ["poststop"]


def test_hooks_with_run(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    hooks.add_all()
    bundle.args("true")
    r = rt.run(bundle)
    assert r.returncode == 0, r.stderr
    assert hooks.kinds() == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                             "poststop"]


def test_poststop_runs_on_forced_delete_of_running(rt: Runtime, bundle: Bundle, hooks: Hooks) -> None:
    hooks.add("poststop")
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    rt.ok("delete", "--force", cid)
    assert hooks.kinds() == ["poststop"]
