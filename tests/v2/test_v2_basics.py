"""Real containers on a pure cgroup v2 host (the user-mode-Linux guest): limits written, read back from the host
side and from inside the container, and the cgroups gone after delete.

Each container gets a cgroupsPath below a per-test parent (/pyoci-v2-<hex>/<id>) so that nothing here can
touch another cgroup; the parent is pyoci's to create and to remove.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import Bundle, Runtime, wait_for

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


def limited(bundle: Bundle, cgroups_path: str, memory: int = 64 * MiB, pids: int = 42) -> Bundle:
    bundle.linux["cgroupsPath"] = cgroups_path
    res: dict[str, Any] = bundle.linux.setdefault("resources", {})
    res["memory"] = {"limit": memory}
    res["pids"] = {"limit": pids}
    return bundle


def cgroup_of(pid: int) -> str:
    """The pid's cgroup v2 path (the '0::' line of /proc/PID/cgroup)."""
    lines = Path("/proc/%d/cgroup" % pid).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), lines
    return lines[0][3:]


def test_the_guest_is_pure_v2() -> None:
    """The harness itself: one cgroup2 hierarchy, the controllers this kernel has enabled for children."""
    ctrls = set((CG / "cgroup.controllers").read_text().split())
    assert {"cpu", "io", "memory", "pids"} <= ctrls
    assert {"cpu", "io", "memory", "pids"} <= set((CG / "cgroup.subtree_control").read_text().split())
    assert cgroup_of(os.getpid()) == "/"


def test_memory_and_pids_limits_read_back_on_the_host(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid), memory=64 * MiB, pids=42)
    with rt.container(bundle, cid=cid):
        d = CG / parent / cid
        assert (d / "memory.max").read_text().strip() == str(64 * MiB)
        assert (d / "pids.max").read_text().strip() == "42"
        pid = rt.state(cid)["pid"]
        assert cgroup_of(pid) == "/%s/%s" % (parent, cid)
        assert (d / "cgroup.procs").read_text().split() == [str(pid)]
        # The parent level pyoci made delegates what the limits need.
        assert {"memory", "pids"} <= set((CG / parent / "cgroup.subtree_control").read_text().split())


def test_limits_read_back_inside_the_container(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """Without a cgroup namespace the container sees its full path; memory.max/pids.max are readable at it."""
    cid = rt.new_id()
    path = "/%s/%s" % (parent, cid)
    limited(bundle, path, memory=96 * MiB, pids=17)
    out = rt.sh(bundle, "cat /proc/self/cgroup", cid=cid)
    assert out.split() == ["0::%s" % path]


def test_cgroup_namespace_shows_its_own_cgroup_as_root(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """With a cgroup namespace: /proc/self/cgroup is 0::/ and the container's cgroup2 mount at /sys/fs/cgroup
    is its own cgroup, with the limits in it."""
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid), memory=80 * MiB, pids=23)
    bundle.set_namespace("cgroup")
    out = rt.sh(bundle, "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; "
                        "grep ' /sys/fs/cgroup ' /proc/self/mountinfo", cid=cid)
    lines = out.splitlines()
    assert lines[:3] == ["0::/", str(80 * MiB), "23"], out
    assert " - cgroup2 " in lines[3] and " ro" in lines[3].split(" - ")[0], out


def test_pids_limit_is_enforced(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """pids.max=4: the container's sh, a child sh and two sleeps fit; the child's third fork fails."""
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid), pids=4)
    bundle.sh("sh -c 'for i in 1 2 3 4 5 6; do sleep 30 & echo ok; done'; echo done")
    r = rt.run(bundle, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "ok", "done"], (r.stdout, r.stderr)
    assert "fork" in r.stderr, r.stderr


def test_delete_removes_the_cgroup_and_the_levels_it_created(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    limited(bundle, "/%s/mid/%s" % (parent, cid))
    bundle.args("sleep", "300")
    cid = rt.create(bundle, cid)
    assert (CG / parent / "mid" / cid / "memory.max").read_text().strip() == str(64 * MiB)
    rt.ok("start", cid)
    rt.wait_status(cid, "running")
    rt.ok("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    assert not (CG / parent).exists(), sorted(str(p) for p in (CG / parent).rglob("*"))


def test_default_cgroup_path_is_removed_on_delete(rt: Runtime, bundle: Bundle) -> None:
    """No cgroupsPath: /<id> under the root; there after create, gone after delete."""
    bundle.linux.setdefault("resources", {})["pids"] = {"limit": 9}
    with rt.container(bundle) as cid:
        assert (CG / cid / "pids.max").read_text().strip() == "9"
    wait_for(lambda: not (CG / cid).exists(), 5, what="cgroup /%s removed" % cid)


def test_pause_and_resume_through_cgroup_freeze(rt: Runtime, bundle: Bundle, parent: str) -> None:
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid))
    bundle.args("sleep", "300")
    d = CG / parent / cid
    with rt.container(bundle, cid=cid):
        rt.ok("start", cid)
        rt.wait_status(cid, "running")
        rt.ok("pause", cid)
        assert "frozen 1" in (d / "cgroup.events").read_text().splitlines()
        assert rt.status(cid) == "paused"
        rt.ok("resume", cid)
        assert "frozen 0" in (d / "cgroup.events").read_text().splitlines()
        assert rt.status(cid) == "running"


def test_kill_all_empties_the_cgroup(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """kill --all reaches every process in the cgroup: init and two children (no pid namespace, so the
    children outlive an init killed alone)."""
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid))
    bundle.drop_namespace("pid")
    bundle.sh("sleep 300 & sleep 300 & wait")
    d = CG / parent / cid
    with rt.container(bundle, cid=cid):
        rt.ok("start", cid)
        wait_for(lambda: len((d / "cgroup.procs").read_text().split()) == 3, what="init and two children")
        rt.ok("kill", "--all", cid, "KILL")
        wait_for(lambda: not (d / "cgroup.procs").read_text().strip(), what="an empty cgroup")
        rt.wait_status(cid, "stopped")


def test_kill_all_and_delete_reach_the_containers_own_sub_cgroups(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """A container with a writable cgroup mount may make cgroups below its own and move processes there:
    `ps` lists them, `kill --all` kills them (cgroup.kill takes the whole subtree), `delete` removes the subtree."""
    cid = rt.new_id()
    limited(bundle, "/%s/%s" % (parent, cid))
    bundle.set_namespace("cgroup")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    bundle.add_mount("/sys/fs/cgroup", type="cgroup", source="cgroup", options=["nosuid", "noexec", "nodev", "rw"])
    bundle.sh("mkdir -p /sys/fs/cgroup/sub/deeper && "
              "sh -c 'echo $$ > /sys/fs/cgroup/sub/deeper/cgroup.procs && exec sleep 300' & exec sleep 300")
    d = CG / parent / cid
    with rt.container(bundle, cid=cid):
        rt.ok("start", cid)
        deeper = d / "sub" / "deeper" / "cgroup.procs"
        moved = wait_for(lambda: deeper.exists() and deeper.read_text().split(), what="a process in sub/deeper")
        listed = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
        assert int(moved[0]) in listed and rt.state(cid)["pid"] in listed
        rt.ok("kill", "--all", cid, "KILL")
        wait_for(lambda: not deeper.read_text().split(), what="the sub-cgroup's process killed")
        rt.wait_status(cid, "stopped")
        rt.delete(cid)
    assert not d.exists()


def test_a_shared_level_stays_until_its_last_container_is_deleted(rt: Runtime, bundle: Bundle, parent: str) -> None:
    """The first container makes /parent/mid; the second lives there too: deleting the first leaves mid (no
    error, no wait). The second did not make mid and leaves it (runc leaves every level; the fixture removes it)."""
    bundle.args("sleep", "300")
    first, second = rt.new_id(), rt.new_id()
    limited(bundle, "/%s/mid/%s" % (parent, first))
    rt.create(bundle, first)
    limited(bundle, "/%s/mid/%s" % (parent, second))
    rt.create(bundle, second)
    try:
        rt.delete(first)
        assert (CG / parent / "mid" / second).is_dir() and not (CG / parent / "mid" / first).exists()
    finally:
        rt.cmd("delete", "--force", second)
    assert (CG / parent / "mid").is_dir() and not (CG / parent / "mid" / second).exists()
