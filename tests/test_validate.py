"""Tests for pyoci.validate: one failing example per semantic check, with its message."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from mutators import del_path, set_path
from hypothesis import given, settings
from hypothesis import strategies as st

from pyoci.validate import (
    Problem,
    format_problems,
    has_errors,
    main,
    schema_problems,
    semantic_problems,
    validate_bundle,
    validate_config,
)

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_CONFIG = REPO / "bundles" / "busybox" / "config.json"


def base_config() -> dict:
    """A small valid config (the busybox bundle's), as a fresh copy."""
    return json.loads(BUSYBOX_CONFIG.read_text())


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(base_config()))
    return tmp_path


def test_problem_str() -> None:
    assert str(Problem("a.b[1]", "bad")) == "a.b[1]: bad"
    assert str(Problem("", "bad")) == "bad"
    assert Problem("x", "y").warning is False


def test_base_config_is_clean(bundle_dir: Path) -> None:
    assert semantic_problems(base_config(), bundle_dir) == []
    assert validate_config(base_config(), bundle_dir, full=True) == []
    assert validate_bundle(bundle_dir) == []


# Each case: (id, mutate(config) -> None, expected path, expected reason (substring), warning?)
_set, _del = set_path, del_path


def _ns(*types: str) -> Callable[[dict], None]:
    return _set("linux.namespaces", [{"type": t} for t in types])


def _seq(*muts: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(cfg: dict) -> None:
        for m in muts:
            m(cfg)

    return mutate


NS_ALL = ("pid", "network", "ipc", "uts", "mount")
MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
RULE = {"names": ["read"], "action": "SCMP_ACT_ALLOW"}

CASES: list[tuple[str, Callable[[dict], None], str, str, bool]] = [
    # document / ociVersion
    ("oci-missing", _del("ociVersion"), "ociVersion", "required field is missing", False),
    ("oci-2x", _set("ociVersion", "2.0.0"), "ociVersion", 'must be a 1.x SemVer version such as "1.0.2", got "2.0.0"', False),
    ("oci-garbage", _set("ociVersion", "latest"), "ociVersion", "must be a 1.x SemVer version", False),
    ("oci-type", _set("ociVersion", 1), "ociVersion", "expected string, got integer", False),
    # root
    ("root-missing", _del("root"), "root", "required field is missing", False),
    ("root-path-missing", _set("root", {}), "root.path", "required field is missing", False),
    ("root-absent-dir", _set("root.path", "nope"), "root.path", "nope (in bundle", False),
    ("root-not-dir", _set("root.path", "config.json"), "root.path", "is not a directory", False),
    ("root-empty", _set("root.path", ""), "root.path", "must not be empty", False),
    ("root-nul", _set("root.path", "a\0b"), "root.path", "cannot access", False),
    # namespaces
    ("ns-dup", _ns("pid", "network", "pid", "uts"), "linux.namespaces[2].type", 'duplicate namespace "pid"', False),
    ("ns-unknown", _ns("pid", "netwrk"), "linux.namespaces[1].type", 'unknown namespace type "netwrk"', False),
    ("ns-type-missing", _set("linux.namespaces", [{}]), "linux.namespaces[0].type", "required field is missing", False),
    ("ns-path-missing-file", _set("linux.namespaces", [{"type": "network", "path": "/proc/999999999/ns/net"}]),
     "linux.namespaces[0].path", '"/proc/999999999/ns/net" does not exist', False),
    ("ns-path-relative", _set("linux.namespaces", [{"type": "network", "path": "ns/net"}]),
     "linux.namespaces[0].path", 'must be an absolute path, got "ns/net"', False),
    ("ns-not-list", _set("linux.namespaces", {"type": "pid"}), "linux.namespaces", "expected array, got object", False),
    # user namespace mappings
    ("userns-no-uidmap", _seq(_ns(*NS_ALL, "user"), _set("linux.gidMappings", MAP)),
     "linux.uidMappings", "required: linux.namespaces creates a user namespace", False),
    ("userns-no-gidmap", _seq(_ns(*NS_ALL, "user"), _set("linux.uidMappings", MAP)),
     "linux.gidMappings", "required: linux.namespaces creates a user namespace", False),
    ("map-without-userns", _set("linux.uidMappings", MAP), "linux.uidMappings", "has no user namespace", False),
    ("map-size-zero", _seq(_ns(*NS_ALL, "user"), _set("linux.uidMappings", [{"containerID": 0, "hostID": 1, "size": 0}]),
                           _set("linux.gidMappings", MAP)), "linux.uidMappings[0].size", "must be at least 1", False),
    ("map-field-missing", _seq(_ns(*NS_ALL, "user"), _set("linux.uidMappings", [{"containerID": 0, "size": 1}]),
                               _set("linux.gidMappings", MAP)), "linux.uidMappings[0].hostID", "required field is missing", False),
    ("map-huge", _seq(_ns(*NS_ALL, "user"), _set("linux.uidMappings", [{"containerID": 0, "hostID": 2**32, "size": 1}]),
                      _set("linux.gidMappings", MAP)), "linux.uidMappings[0].hostID", "4294967296 is out of range 0..4294967295", False),
    # hostname / domainname
    ("hostname-no-uts", _ns("pid", "mount"), "hostname", "needs a private UTS namespace", False),
    ("domainname-no-uts", _seq(_ns("pid", "mount"), _del("hostname"), _set("domainname", "lan")),
     "domainname", "setting the domainname needs a private UTS namespace", False),
    # process
    ("cwd-relative", _set("process.cwd", "tmp"), "process.cwd", 'must be an absolute path, got "tmp"', False),
    ("cwd-missing", _del("process.cwd"), "process.cwd", "required field is missing", False),
    ("args-empty", _set("process.args", []), "process.args", "must not be empty", False),
    ("args-missing", _del("process.args"), "process.args", "required field is missing", False),
    ("args-item-type", _set("process.args", ["sh", 1]), "process.args[1]", "expected string, got integer", False),
    ("process-type", _set("process", ["sh"]), "process", "expected object, got array", False),
    ("env-no-equals", _set("process.env", ["PATH=/bin", "JUSTNAME"]), "process.env[1]", '"JUSTNAME" is not of the form KEY=VALUE', False),
    ("env-empty-name", _set("process.env", ["=x"]), "process.env[0]", "has an empty variable name", False),
    ("uid-too-big", _set("process.user.uid", 2**32 - 1), "process.user.uid", "4294967295 is out of range 0..4294967294", False),
    ("gid-negative", _set("process.user.gid", -1), "process.user.gid", "-1 is out of range 0..4294967294", False),
    ("uid-float", _set("process.user.uid", 1.0), "process.user.uid", "expected integer, got number", False),
    ("uid-bool", _set("process.user.uid", True), "process.user.uid", "expected integer, got boolean", False),
    ("uid-missing", _set("process.user", {"gid": 0}), "process.user.uid", "required field is missing", False),
    ("additional-gid", _set("process.user.additionalGids", [1, 2**40]), "process.user.additionalGids[1]", "out of range", False),
    ("cap-unknown", _set("process.capabilities.bounding", ["CAP_KILL", "CAP_NET_ADMN"]),
     "process.capabilities.bounding[1]", 'unknown capability "CAP_NET_ADMN"', True),
    ("cap-lowercase", _set("process.capabilities.ambient", ["cap_kill"]),
     "process.capabilities.ambient[0]", 'unknown capability "cap_kill" (did you mean "CAP_KILL"?)', True),
    ("cap-no-prefix", _set("process.capabilities.effective", ["SYS_ADMIN"]),
     "process.capabilities.effective[0]", '(did you mean "CAP_SYS_ADMIN"?)', True),
    ("rlimit-unknown", _set("process.rlimits", [{"type": "RLIMIT_FILES", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", 'unknown rlimit "RLIMIT_FILES"', False),
    ("rlimit-soft-gt-hard", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
     "process.rlimits[0].soft", "soft limit 2048 is greater than hard limit 1024", False),
    ("rlimit-dup", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
     "process.rlimits[1].type", 'duplicate rlimit "RLIMIT_NOFILE" (first at process.rlimits[0])', False),
    ("rlimit-missing-hard", _set("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0}]),
     "process.rlimits[0].hard", "required field is missing", False),
    ("oom-range", _set("process.oomScoreAdj", 1001), "process.oomScoreAdj", "1001 is out of range -1000..1000", False),
    ("ioprio-class", _set("process.ioPriority", {"class": "IOPRIO_CLASS_FAST"}), "process.ioPriority.class", 'unknown I/O priority class "IOPRIO_CLASS_FAST"', False),
    ("sched-policy", _set("process.scheduler", {"policy": "SCHED_FAST"}), "process.scheduler.policy", 'unknown scheduling policy "SCHED_FAST"', False),
    ("console-size", _set("process.consoleSize", {"height": 10}), "process.consoleSize.width", "required field is missing", False),
    ("terminal-type", _set("process.terminal", "yes"), "process.terminal", "expected boolean, got string", False),
    # mounts
    ("mount-relative", _set("mounts.0.destination", "proc"), "mounts[0].destination",
     '"proc" is not absolute; it is taken relative to the container\'s root', True),
    ("mount-dup", _set("mounts.1.destination", "/proc/"), "mounts[1].destination", 'is also the destination of mounts[0]', True),
    ("mount-no-dest", _del("mounts.0.destination"), "mounts[0].destination", "required field is missing", False),
    ("mount-options-type", _set("mounts.0.options", "ro"), "mounts[0].options", "expected array, got string", False),
    # devices
    ("device-no-major", _set("linux.devices", [{"type": "c", "path": "/dev/fuse", "minor": 229}]),
     "linux.devices[0].major", 'required field is missing (needed for device type "c")', False),
    ("device-no-minor-b", _set("linux.devices", [{"type": "b", "path": "/dev/sda", "major": 8}]),
     "linux.devices[0].minor", 'needed for device type "b"', False),
    ("device-relative", _set("linux.devices", [{"type": "p", "path": "dev/fifo"}]),
     "linux.devices[0].path", 'must be an absolute path, got "dev/fifo"', False),
    ("device-type", _set("linux.devices", [{"type": "x", "path": "/dev/x"}]),
     "linux.devices[0].type", 'unknown device type "x"', False),
    ("cgroup-device-access", _set("linux.resources.devices", [{"allow": True, "access": "rwx"}]),
     "linux.resources.devices[0].access", 'must be a combination of "r", "w" and "m"', False),
    ("cgroup-device-allow", _set("linux.resources.devices", [{"access": "rwm"}]),
     "linux.resources.devices[0].allow", "required field is missing", False),
    ("unified-slash", _set("linux.resources.unified", {"../memory.max": "1"}),
     'linux.resources.unified["../memory.max"]', "must be a cgroup file name", False),
    ("swappiness", _set("linux.resources.memory", {"swappiness": 101}), "linux.resources.memory.swappiness", "out of range 0..100", False),
    # sysctl
    ("sysctl-net-no-netns", _seq(_ns("pid", "ipc", "uts", "mount"), _set("linux.sysctl", {"net.ipv4.ip_forward": "1"})),
     'linux.sysctl["net.ipv4.ip_forward"]', 'needs a network namespace (add {"type": "network"}', False),
    ("sysctl-ipc", _seq(_ns("pid", "network", "uts", "mount"), _set("linux.sysctl", {"kernel.shmmax": "1"})),
     'linux.sysctl["kernel.shmmax"]', "needs a ipc namespace", False),
    ("sysctl-mqueue", _seq(_ns("pid", "network", "uts", "mount"), _set("linux.sysctl", {"fs.mqueue.msg_max": "1"})),
     'linux.sysctl["fs.mqueue.msg_max"]', "needs a ipc namespace", False),
    ("sysctl-uts", _seq(_ns("pid", "network", "ipc", "mount"), _del("hostname"), _set("linux.sysctl", {"kernel.hostname": "x"})),
     'linux.sysctl["kernel.hostname"]', "needs a uts namespace", False),
    ("sysctl-host", _set("linux.sysctl", {"vm.swappiness": "10"}),
     'linux.sysctl["vm.swappiness"]', '"vm.swappiness" is not namespaced', False),
    ("sysctl-slash-form", _seq(_ns("pid", "ipc", "uts", "mount"), _set("linux.sysctl", {"net/ipv4/ip_forward": "1"})),
     'linux.sysctl["net/ipv4/ip_forward"]', "needs a network namespace", False),
    ("sysctl-value-type", _set("linux.sysctl", {"net.ipv4.ip_forward": 1}),
     'linux.sysctl["net.ipv4.ip_forward"]', "expected string, got integer", False),
    # seccomp
    ("seccomp-default", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_DENY"}),
     "linux.seccomp.defaultAction", 'unknown seccomp action "SCMP_ACT_DENY"', False),
    ("seccomp-default-missing", _set("linux.seccomp", {}), "linux.seccomp.defaultAction", "required field is missing", False),
    ("seccomp-default-notify", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/a.sock"}),
     "linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action", False),
    ("seccomp-rule-action", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}),
     "linux.seccomp.syscalls[0].action", 'unknown seccomp action "ALLOW"', False),
    ("seccomp-arch", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "x86_64"]}),
     "linux.seccomp.architectures[1]", 'unknown architecture "x86_64"', False),
    ("seccomp-flag", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
     "linux.seccomp.flags[0]", 'unknown seccomp flag "SECCOMP_FILTER_FLAG_FAST"', False),
    ("seccomp-syscall-unknown", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", "opne"], "action": "SCMP_ACT_ERRNO"}]}),
     "linux.seccomp.syscalls[0].names[1]", 'unknown syscall "opne"', True),
    ("seccomp-names-empty", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
     "linux.seccomp.syscalls[0].names", "must name at least one syscall", False),
    ("seccomp-arg-op", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {**RULE, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}),
     "linux.seccomp.syscalls[0].args[0].op", 'unknown comparison operator "SCMP_CMP_EQUAL"', False),
    ("seccomp-arg-index", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {**RULE, "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp.syscalls[0].args[0].index", "6 is out of range 0..5", False),
    ("seccomp-arg-value", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {**RULE, "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp.syscalls[0].args[0].value", "-1 is out of range 0..18446744073709551615", False),
    ("seccomp-notify-no-listener", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}),
     "linux.seccomp.listenerPath", "required because linux.seccomp.syscalls[0].action is SCMP_ACT_NOTIFY", False),
    # hooks
    ("hook-relative", _set("hooks", {"prestart": [{"path": "bin/hook"}]}), "hooks.prestart[0].path", 'must be an absolute path, got "bin/hook"', False),
    ("hook-no-path", _set("hooks", {"poststop": [{"args": ["x"]}]}), "hooks.poststop[0].path", "required field is missing", False),
    ("hook-timeout-zero", _set("hooks", {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.createRuntime[0].timeout", "must be greater than zero (seconds), got 0", False),
    ("hook-timeout-negative", _set("hooks", {"startContainer": [{"path": "/bin/true", "timeout": -5}]}),
     "hooks.startContainer[0].timeout", "must be greater than zero", False),
    ("hook-env", _set("hooks", {"poststart": [{"path": "/bin/true", "env": ["NOEQ"]}]}),
     "hooks.poststart[0].env[0]", "is not of the form KEY=VALUE", False),
    # time namespace
    ("timeoffsets-no-timens", _set("linux.timeOffsets", {"monotonic": {"secs": 1}}),
     "linux.timeOffsets", 'needs a time namespace; add {"type": "time"} to linux.namespaces', False),
    ("timeoffsets-clock", _seq(_ns(*NS_ALL, "time"), _set("linux.timeOffsets", {"realtime": {"secs": 1}})),
     'linux.timeOffsets.realtime', 'unknown clock "realtime"', False),
    # misc linux
    ("masked-relative", _set("linux.maskedPaths", ["proc/kcore"]), "linux.maskedPaths[0]", 'must be an absolute path, got "proc/kcore"', False),
    ("readonly-relative", _set("linux.readonlyPaths", ["/ok", "sys"]), "linux.readonlyPaths[1]", "must be an absolute path", False),
    ("propagation", _set("linux.rootfsPropagation", "recursive"), "linux.rootfsPropagation", 'unknown propagation "recursive"', False),
    ("personality", _set("linux.personality", {"domain": "LINUX64"}), "linux.personality.domain", 'unknown personality domain "LINUX64"', False),
    ("memory-policy", _set("linux.memoryPolicy", {"mode": "MPOL_FAST"}), "linux.memoryPolicy.mode", 'unknown memory policy mode "MPOL_FAST"', False),
    ("linux-type", _set("linux", []), "linux", "expected object, got array", False),
    # annotations
    ("annotation-value", _set("annotations", {"a": 1}), "annotations.a", "expected string, got integer", False),
    ("annotation-empty-key", _set("annotations", {"": "x"}), "annotations", "annotation keys must not be empty", False),
]


@pytest.mark.parametrize("mutate,path,reason,warning", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantic_check(bundle_dir: Path, mutate: Callable[[dict], None], path: str, reason: str, warning: bool) -> None:
    cfg = base_config()
    mutate(cfg)
    problems = semantic_problems(cfg, bundle_dir)
    matching = [p for p in problems if p.path == path and reason in p.reason]
    assert matching, f"expected {path}: ...{reason}... in:\n" + "\n".join(map(str, problems))
    assert all(p.warning == warning for p in matching), matching
    # a warning alone never fails validation; an error always does
    assert has_errors(problems) or warning
    # and validate_config keeps the semantic message
    assert any(p.path == path and reason in p.reason for p in validate_config(cfg, bundle_dir))


def test_case_ids_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_warning_only_config_is_valid(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["mounts"][0]["destination"] = "proc"
    problems = validate_config(cfg, bundle_dir)
    assert problems and all(p.warning for p in problems)
    assert not has_errors(problems)


def test_user_namespace_with_path_needs_no_mappings(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/proc/self/ns/user"})
    assert semantic_problems(cfg, bundle_dir) == []


def test_userns_with_mappings_ok(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = MAP
    cfg["linux"]["gidMappings"] = MAP
    assert semantic_problems(cfg, bundle_dir) == []


def test_namespaced_sysctls_ok(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1", "kernel.msgmax": "1",
                              "kernel.sem": "1 2 3 4", "fs.mqueue.queues_max": "1", "kernel.domainname": "x"}
    assert semantic_problems(cfg, bundle_dir) == []


def test_bundle_none_skips_filesystem() -> None:
    cfg = base_config()
    cfg["root"]["path"] = "/does/not/exist"
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/does/not/exist"})
    assert semantic_problems(cfg, None) == []


def test_absolute_root_path(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["root"]["path"] = str(bundle_dir / "rootfs")
    assert semantic_problems(cfg, bundle_dir) == []
    cfg["root"]["path"] = str(bundle_dir / "missing")
    assert [str(p) for p in semantic_problems(cfg, bundle_dir)] == [f"root.path: {bundle_dir / 'missing'} does not exist"]


def test_path_sorting_is_numeric(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["process"]["env"] = [f"V{i}=1" for i in range(12)] + ["bad"]
    cfg["process"]["env"][2] = "bad"
    paths = [p.path for p in semantic_problems(cfg, bundle_dir)]
    assert paths == ["process.env[2]", "process.env[12]"]


@pytest.mark.parametrize("doc,reason", [
    ([], "config must be a JSON object, got array"),
    (None, "config must be a JSON object, got null"),
    ("{}", "config must be a JSON object, got string"),
    (3, "config must be a JSON object, got integer"),
])
def test_non_object_config(doc: object, reason: str) -> None:
    assert semantic_problems(doc, None) == [Problem("", reason)]


def test_empty_object_reports_required() -> None:
    assert [str(p) for p in semantic_problems({}, None)] == [
        "ociVersion: required field is missing",
        "root: required field is missing",
    ]


# --------------------------------------------------------------------------- validate_config merging

def test_validate_config_full_adds_schema(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["linux"]["intelRdt"] = {"enableMonitoring": "yes"}  # only the schema looks inside intelRdt
    assert semantic_problems(cfg, bundle_dir) == []
    assert validate_config(cfg, bundle_dir) == []  # fast path: semantic only
    assert validate_config(cfg, bundle_dir, full=True) == [Problem("linux.intelRdt.enableMonitoring", "expected boolean, got string")]


def test_validate_config_error_triggers_schema(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["linux"]["intelRdt"] = {"enableMonitoring": "yes"}
    cfg["process"]["cwd"] = "relative"
    problems = validate_config(cfg, bundle_dir)
    assert Problem("linux.intelRdt.enableMonitoring", "expected boolean, got string") in problems
    assert Problem("process.cwd", 'must be an absolute path, got "relative"') in problems


def test_validate_config_deduplicates(bundle_dir: Path) -> None:
    cfg = base_config()
    del cfg["process"]["cwd"]
    cfg["process"]["user"]["uid"] = "0"
    cfg["linux"]["namespaces"][0]["type"] = "bogus"
    problems = validate_config(cfg, bundle_dir, full=True)
    assert len(problems) == len(set(problems))
    assert [p for p in problems if p.path == "process.cwd"] == [Problem("process.cwd", "required field is missing")]
    assert [p for p in problems if p.path == "process.user.uid"] == [Problem("process.user.uid", "expected integer, got string")]
    # the semantic message wins over the schema's generic enum message
    assert len([p for p in problems if p.path == "linux.namespaces[0].type"]) == 1


# --------------------------------------------------------------------------- validate_bundle

def test_validate_bundle_missing_config(tmp_path: Path) -> None:
    (problem,) = validate_bundle(tmp_path)
    assert problem.path == "" and problem.reason == f"{tmp_path / 'config.json'} does not exist"


def test_validate_bundle_missing_dir(tmp_path: Path) -> None:
    assert validate_bundle(tmp_path / "nope") == [Problem("", f"bundle {tmp_path / 'nope'} does not exist")]


def test_validate_bundle_not_dir(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    assert validate_bundle(f) == [Problem("", f"bundle {f} is not a directory")]


def test_validate_bundle_invalid_json(bundle_dir: Path) -> None:
    (bundle_dir / "config.json").write_text('{\n  "ociVersion": "1.0.2",\n  "root": {"path": "rootfs",}\n}\n')
    (problem,) = validate_bundle(bundle_dir)
    assert "is not valid JSON: line 3:29:" in problem.reason
    assert problem.reason.startswith(str(bundle_dir / "config.json"))


@pytest.mark.parametrize("text,fragment", [
    ('{"ociVersion": NaN}', "NaN is not valid JSON"),
    ("", "line 1:1: Expecting value"),
    ('{"a": ' + "9" * 5000 + "}", "is not valid JSON"),
    ("[" * 100000 + "]" * 100000, "nested deeper than 500 levels"),
])
def test_validate_bundle_bad_json_variants(bundle_dir: Path, text: str, fragment: str) -> None:
    (bundle_dir / "config.json").write_text(text)
    (problem,) = validate_bundle(bundle_dir)
    assert fragment in problem.reason


def test_validate_bundle_not_utf8(bundle_dir: Path) -> None:
    (bundle_dir / "config.json").write_bytes(b'{"ociVersion": "\xff"}')
    (problem,) = validate_bundle(bundle_dir)
    assert "is not UTF-8" in problem.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_validate_bundle_unreadable(bundle_dir: Path) -> None:
    (bundle_dir / "config.json").chmod(0)
    (problem,) = validate_bundle(bundle_dir)
    assert "cannot read" in problem.reason


def test_validate_bundle_reports_everything(bundle_dir: Path) -> None:
    cfg = base_config()
    cfg["root"]["path"] = "missing"
    cfg["process"]["rlimits"][0]["soft"] = "1024"
    (bundle_dir / "config.json").write_text(json.dumps(cfg))
    got = [str(p) for p in validate_bundle(bundle_dir)]
    assert got == [
        "process.rlimits[0].soft: expected integer, got string",
        f"root.path: missing (in bundle {bundle_dir}) does not exist",
    ]


def test_main(bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    assert main([str(bundle_dir)], out=lines.append) == 0 and lines == []
    cfg = base_config()
    cfg["process"]["cwd"] = "x"
    cfg["mounts"][0]["destination"] = "proc"
    (bundle_dir / "config.json").write_text(json.dumps(cfg))
    assert main([str(bundle_dir)], out=lines.append) == 1
    text = "\n".join(lines)
    assert f"{bundle_dir}/config.json: warning: mounts[0].destination:" in text
    assert f"{bundle_dir}/config.json: error: process.cwd: must be an absolute path" in text
    state = bundle_dir / "state.json"
    state.write_text(json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "paused", "bundle_dir": "/b"}))
    lines.clear()
    assert main(["--state", str(state)], out=lines.append) == 1
    assert "status" in lines[0]


def test_format_problems() -> None:
    text = format_problems([Problem("a", "b"), Problem("", "c", warning=True)], "cfg")
    assert text == "cfg: error: a: b\ncfg: warning: c"


# --------------------------------------------------------------------------- robustness

JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from(["", "/", "pid", "user", "uts", "time", "CAP_KILL", "RLIMIT_NOFILE", "SCMP_ACT_NOTIFY", "net.x", "c", "p"]),
)
JSON_ANY = st.recursive(JSON_LEAF, lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=6), ch, max_size=4),
                        max_leaves=20)
FIELD_PATHS = [
    (), ("ociVersion",), ("root",), ("root", "path"), ("process",), ("process", "args"), ("process", "user"),
    ("process", "user", "uid"), ("process", "capabilities"), ("process", "capabilities", "bounding"), ("process", "rlimits"),
    ("process", "env"), ("process", "consoleSize"), ("process", "scheduler"), ("mounts",), ("hooks",), ("hooks", "prestart"),
    ("annotations",), ("hostname",), ("linux",), ("linux", "namespaces"), ("linux", "uidMappings"), ("linux", "devices"),
    ("linux", "resources"), ("linux", "resources", "devices"), ("linux", "resources", "unified"), ("linux", "sysctl"),
    ("linux", "seccomp"), ("linux", "seccomp", "syscalls"), ("linux", "timeOffsets"), ("linux", "personality"),
    ("linux", "memoryPolicy"), ("linux", "maskedPaths"),
]


@settings(max_examples=300, deadline=None)
@given(where=st.sampled_from(FIELD_PATHS), value=JSON_ANY)
def test_semantic_never_raises(where: tuple[str, ...], value: object) -> None:
    cfg: Any = base_config()
    if not where:
        cfg = value
    else:
        obj = cfg
        for k in where[:-1]:
            obj = obj.setdefault(k, {})
        obj[where[-1]] = value
    problems = semantic_problems(cfg, None)
    assert all(isinstance(p, Problem) for p in problems)
    assert not any("internal error" in p.reason for p in problems), problems
    for p in problems:
        str(p)


def test_huge_int_never_raises() -> None:
    cfg = base_config()
    cfg["process"]["user"]["uid"] = 10**5000
    cfg["process"]["oomScoreAdj"] = -(10**5000)
    problems = semantic_problems(cfg, None)
    assert any(p.path == "process.user.uid" for p in problems)
    assert not any("internal error" in p.reason for p in problems)
    schema_problems(cfg)  # must not raise either


def test_semantic_does_not_import_jsonschema() -> None:
    code = (
        "import json, sys, pyoci.validate as v\n"
        f"cfg = json.load(open({str(BUSYBOX_CONFIG)!r}))\n"
        "cfg['process']['cwd'] = 'relative'\n"
        "v.semantic_problems(cfg, None)\n"
        f"v.validate_config(json.load(open({str(BUSYBOX_CONFIG)!r})), {str(BUSYBOX_CONFIG.parent)!r})\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "pyoci.validate" in imported
    assert not {m for m in imported if m.split(".")[0] in ("jsonschema", "referencing", "rpds", "attrs")}, imported


def test_deepcopy_safety(bundle_dir: Path) -> None:
    """The validator must not mutate its input."""
    cfg = base_config()
    cfg["linux"]["sysctl"] = {"vm.x": "1"}
    before = copy.deepcopy(cfg)
    validate_config(cfg, bundle_dir, full=True)
    assert cfg == before
