"""Device rules on a pure cgroup v2 host: the container's cgroup gets pyoci's eBPF device filter.

With Docker's default capabilities (CAP_MKNOD among them) a container may mknod any device but opens only
the defaults and what its rules allow; a rule can close a default device; `update` swaps the program.
"""
from __future__ import annotations

import json
from pathlib import Path

from conftest import Bundle, Runtime

from pyoci.cgroups import devices

CG = Path("/sys/fs/cgroup")
# Docker's default capability set
DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
               "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
               "CAP_KILL", "CAP_AUDIT_WRITE"]
DENY_ALL = {"allow": False, "access": "rwm"}
# each line: what was tried, then ok or the shell's error
PROBE = ("for t in 'mknod /nodes/sda b 8 0' 'head -c1 /nodes/sda' 'head -c1 /dev/zero' 'echo x >/dev/null' "
         "'mknod /nodes/kmsg c 1 11' 'echo x >/nodes/kmsg'; do if out=$(sh -c \"$t\" 2>&1 >/nodes/out); "
         "then echo \"$t: ok\"; else echo \"$t: $out\"; fi; done")


def docker_like(bundle: Bundle, parent: str, cid: str, rules: list[dict]) -> None:
    bundle.process["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    bundle.linux["cgroupsPath"] = "/%s/%s" % (parent, cid)
    bundle.linux.setdefault("resources", {})["devices"] = rules
    bundle.private_rootfs(readonly=True)  # /nodes is made in it, never in the shared rootfs
    bundle.add_mount("/nodes", "tmpfs", "tmpfs", ["rw"])  # device nodes work there (the rootfs' /tmp is nodev)


def results(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_docker_caps_mknod_but_the_device_does_not_open(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    docker_like(bundle, parent, cid, [DENY_ALL])
    got = results(rt.sh(bundle, PROBE, cid=cid))
    assert got["mknod /nodes/sda b 8 0"] == "ok"
    assert "Operation not permitted" in got["head -c1 /nodes/sda"], got
    assert got["head -c1 /dev/zero"] == "ok" and got["echo x >/dev/null"] == "ok"
    assert got["mknod /nodes/kmsg c 1 11"] == "ok"
    assert "Operation not permitted" in got["echo x >/nodes/kmsg"], got


def test_an_allowing_rule_opens_and_a_denying_rule_closes(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    docker_like(bundle, parent, cid, [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"},
                                      {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    got = results(rt.sh(bundle, PROBE, cid=cid))
    assert got["echo x >/nodes/kmsg"] == "ok", got
    assert "Operation not permitted" in got["echo x >/dev/null"], got
    assert got["head -c1 /dev/zero"] == "ok"


def test_update_replaces_the_program_and_delete_removes_it(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    docker_like(bundle, parent, cid, [DENY_ALL])
    bundle.args("sleep", "300")
    d = CG / parent / cid
    with rt.container(bundle, cid=cid):
        rt.ok("start", cid)
        first = devices.attached(str(d))
        assert len(first) == 1

        def can_write_null() -> bool:
            return rt.cmd("exec", cid, "sh", "-c", "echo x >/dev/null").returncode == 0

        assert can_write_null()
        closed = {"devices": [DENY_ALL, {"allow": False, "type": "c", "major": 1, "minor": 3}]}
        rt.ok("update", "--resources", "-", cid, input=json.dumps(closed))
        second = devices.attached(str(d))
        assert len(second) == 1 and second != first
        assert not can_write_null()
        # an update without devices leaves the program alone
        rt.ok("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 50}}))
        assert devices.attached(str(d)) == second
        rt.ok("update", "--resources", "-", cid, input=json.dumps({"devices": [DENY_ALL]}))
        assert can_write_null() and len(devices.attached(str(d))) == 1
    assert not d.exists()
