"""`pyoci features` (runtime-spec 1.3.0 features.md, features-linux.md): the document's shape, and each list
checked against what create really accepts, by running containers with every entry; `--host` narrows it to
this host."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conftest import Bundle, Runtime

SPECIAL_MOUNT_OPTIONS = {
    "bind", "rbind",  # they make a bind mount: tested as one
    "idmap", "ridmap",  # id-mapped binds need a user namespace: tests/test_runc_parity.py runs them
    "remount",  # changes an existing mount: tested on a bind
    "tmpcopyup",  # a tmpfs over a directory with contents: tested on /etc
}


def features(rt: Runtime, *extra: str) -> dict[str, Any]:
    return json.loads(rt.ok("features", *extra).stdout)


def test_the_document(rt: Runtime) -> None:
    from pyoci.validate import schema_problems

    doc = features(rt)
    for d in (doc, features(rt, "--host")):
        assert not schema_problems(d, "features")  # schemas/features-schema.json: features.md of 1.3.0
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.3.0"
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                            "poststop"]
    linux = doc["linux"]
    assert linux["namespaces"] == ["mount", "pid", "network", "ipc", "uts", "user", "cgroup", "time"]
    assert all(c.startswith("CAP_") for c in linux["capabilities"]) and "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    sec = linux["seccomp"]
    assert sec["enabled"] is True and "SCMP_ACT_NOTIFY" in sec["actions"]
    assert set(sec["supportedFlags"]) <= set(sec["knownFlags"])
    assert linux["apparmor"] == {"enabled": False} and linux["selinux"] == {"enabled": False}
    assert linux["intelRdt"] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}} and linux["netDevices"] == {"enabled": True}
    assert "MPOL_BIND" in linux["memoryPolicy"]["modes"]
    assert doc["annotations"]["org.pyoci.version"] == rt.ok("--version").stdout.split()[2]
    assert doc["potentiallyUnsafeConfigAnnotations"] == ["org.systemd.property."]
    assert rt.ok("state", "--help").returncode == 0  # features needs no container and leaves none


def test_host_narrows_to_this_host(rt: Runtime) -> None:
    doc, host = features(rt), features(rt, "--host")
    for key in ("namespaces", "capabilities"):
        assert set(host["linux"][key]) <= set(doc["linux"][key])
    have = {n for n in doc["linux"]["namespaces"]
            if os.path.exists("/proc/self/ns/" + {"network": "net", "mount": "mnt"}.get(n, n))}
    assert host["linux"]["namespaces"] == [n for n in doc["linux"]["namespaces"] if n in have]
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert len(host["linux"]["capabilities"]) == min(last + 1, len(doc["linux"]["capabilities"]))
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    assert host["linux"]["cgroup"]["v2"] == any(" - cgroup2 " in line for line in lines)
    assert host["linux"]["cgroup"]["v1"] == any(" - cgroup " in line for line in lines)
    assert host["linux"]["cgroup"]["systemd"] == os.path.isdir("/run/systemd/system")


def test_every_mount_option_is_accepted_by_create(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    options = features(rt)["mountOptions"]
    rootfs = bundle.private_rootfs(readonly=True)
    src = tmp_path / "src"
    src.mkdir()
    plain = [o for o in options if o not in SPECIAL_MOUNT_OPTIONS]
    for i, opt in enumerate(plain):
        (rootfs / ("m%d" % i)).mkdir()
        bundle.add_mount("/m%d" % i, "tmpfs", "tmpfs", [opt])
    (rootfs / "b1").mkdir()
    (rootfs / "b2").mkdir()
    bundle.add_mount("/b1", "bind", str(src), ["bind"])
    bundle.add_mount("/b2", "bind", str(src), ["rbind", "remount", "ro"])
    bundle.add_mount("/etc", "tmpfs", "tmpfs", ["tmpcopyup"])
    bundle.sh("test -e /etc/passwd && echo copied")
    r = rt.run(bundle, None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["copied"]


def test_every_namespace_capability_and_seccomp_name_is_accepted(rt: Runtime, bundle: Bundle) -> None:
    doc = features(rt, "--host")
    linux = doc["linux"]
    for kind in linux["namespaces"]:
        if kind not in bundle.namespaces():
            bundle.set_namespace(kind)
    if "user" in linux["namespaces"]:
        bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    bundle.process["capabilities"] = {k: list(linux["capabilities"]) for k in ("bounding", "permitted")}
    sec = linux["seccomp"]
    # calls the shell never makes with these arguments: one rule per action, one per operator
    rules = [{"names": ["sethostname"], "action": action, "args": [{"index": 1, "value": 4242 + i, "op": "SCMP_CMP_EQ"}],
              **({"errnoRet": 1} if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE") else {})}
             for i, action in enumerate(sec["actions"]) if action not in ("SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY")]
    rules += [{"names": ["setdomainname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
               "args": [{"index": 1, "value": 0xFF, "valueTwo": 4242, "op": op}]} for op in sec["operators"]]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": sec["archs"],
                               "flags": sec["supportedFlags"], "syscalls": rules}
    bundle.sh("echo ran")
    r = rt.run(bundle, None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ran"]


@pytest.mark.parametrize("mode", ["MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_LOCAL",
                                  "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"])
def test_every_memory_policy_mode_is_accepted(rt: Runtime, bundle: Bundle, mode: str) -> None:
    assert mode in features(rt)["linux"]["memoryPolicy"]["modes"]
    if not os.path.isdir("/sys/devices/system/node/node0"):
        pytest.skip("no NUMA node 0")
    bundle.linux["memoryPolicy"] = {"mode": mode, **({} if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") else {"nodes": "0"})}
    bundle.sh("echo ran")
    r = rt.run(bundle, None)
    assert r.returncode == 0 and r.stdout.split() == ["ran"], r.stderr
