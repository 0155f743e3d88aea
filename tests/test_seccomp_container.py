"""linux.seccomp in real containers: the filter is loaded for run and exec, and bad profiles fail create."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Bundle, Runtime

DATA = Path(__file__).resolve().parent / "data" / "configs"
DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def test_filter_applies_to_the_container_and_to_exec(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["seccomp"] = DENY_MKDIR
    out = rt.sh(bundle, "mkdir /tmp/x 2>&1; grep -E '^Seccomp:' /proc/self/status")
    assert "Permission denied" in out and "Seccomp:\t2" in out
    bundle.args("sleep", "60")
    cid = rt.create(bundle, None, capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rt.ok("start", cid)
        r = rt.cmd("exec", cid, "mkdir", "/tmp/y")
        assert r.returncode != 0 and "Permission denied" in r.stderr
    finally:
        rt.delete(cid)


def test_filter_without_no_new_privileges(rt: Runtime, bundle: Bundle) -> None:
    bundle.process["noNewPrivileges"] = False
    bundle.process["user"] = {"uid": 65534, "gid": 65534}
    bundle.linux["seccomp"] = DENY_MKDIR
    out = rt.sh(bundle, "mkdir /tmp/x 2>&1; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert "Permission denied" in out and "Seccomp:\t2" in out and "NoNewPrivs:\t0" in out


def test_dockers_default_profile_runs_a_container(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["seccomp"] = json.loads((DATA / "docker-moby.json").read_text())["linux"]["seccomp"]
    out = rt.sh(bundle, "echo ok; grep -E '^Seccomp:' /proc/self/status")
    assert out.split("\n")[0] == "ok" and "Seccomp:\t2" in out


def test_bad_profile_fails_create_cleanly(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}]}
    bundle.save()
    line = rt.fail("create", "--bundle", bundle.path, rt.new_id())
    assert "SCMP_ACT_BOGUS" in line and "linux.seccomp.syscalls[0].action" in line
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}
    bundle.save()
    assert "linux.seccomp.flags[0]" in rt.fail("create", "--bundle", bundle.path, rt.new_id())
