"""Tests for the JSON Schemas in schemas/: real-world configs pass, each section rejects bad input."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from mutators import del_path, set_path

from pyoci.validate import Problem, schema_problems, schemas_dir, semantic_problems

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "configs"
BUSYBOX_CONFIG = REPO / "bundles" / "busybox" / "config.json"
CONFIGS = sorted(p for p in CORPUS.glob("*.json") if not p.name.startswith("state-"))
STATES = sorted(CORPUS.glob("state-*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_schema_files_are_wellformed() -> None:
    import jsonschema

    d = schemas_dir()
    names = sorted(p.name for p in d.glob("*.json"))
    assert {"config-schema.json", "state-schema.json"} <= set(names)
    ids = set()
    for p in d.glob("*.json"):
        doc = load(p)
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", p
        assert doc["$id"].endswith("/" + p.name), p
        ids.add(doc["$id"])
    assert len(ids) == len(names)


def test_schemas_dir_found_from_source_tree() -> None:
    assert schemas_dir() == REPO / "schemas"


def test_corpus_present() -> None:
    names = {p.name for p in CONFIGS}
    assert {"docker-moby.json", "containerd-ctr.json", "podman-rootless-userns.json", "kubernetes-cri.json"} <= names
    assert STATES


def _runc_spec(tmp_path: Path, *args: str) -> dict:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    subprocess.run([runc, "spec", *args], cwd=tmp_path, check=True, capture_output=True)
    return load(tmp_path / "config.json")


@pytest.mark.parametrize("args", [(), ("--rootless",)], ids=["default", "rootless"])
def test_runc_spec_is_valid(tmp_path: Path, args: tuple[str, ...]) -> None:
    cfg = _runc_spec(tmp_path, *args)
    assert schema_problems(cfg) == []
    (tmp_path / "rootfs").mkdir()
    assert semantic_problems(cfg, tmp_path) == []


@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_pyoci_spec_is_valid(tmp_path: Path, rootless: bool) -> None:
    """What `pyoci spec [--rootless]` writes passes both layers."""
    from pyoci.spec import default_config

    cfg = default_config(rootless)
    assert schema_problems(cfg) == []
    (tmp_path / "rootfs").mkdir()
    assert [p for p in semantic_problems(cfg, tmp_path) if not p.warning] == []


def test_busybox_bundle_config_is_valid() -> None:
    cfg = load(BUSYBOX_CONFIG)
    assert schema_problems(cfg) == []
    assert semantic_problems(cfg, None) == []


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_corpus_config_is_valid(path: Path) -> None:
    cfg = load(path)
    assert schema_problems(cfg) == []
    # bundle=None: the corpus names host paths (overlay dirs, /proc/PID/ns) that do not exist here
    assert [p for p in semantic_problems(cfg, None) if not p.warning] == []


@pytest.mark.parametrize("path", STATES, ids=[p.stem for p in STATES])
def test_corpus_state_is_valid(path: Path) -> None:
    assert schema_problems(load(path), "state") == []


def test_unknown_fields_accepted_everywhere() -> None:
    cfg = load(CORPUS / "everything-1.2.json")
    stack: list[Any] = [cfg]
    while stack:  # add an unknown key to every object in the document
        obj = stack.pop()
        if isinstance(obj, dict):
            stack.extend(obj.values())
            if "x-extra" not in obj:
                obj["x-extra"] = {"nested": [1, "two"]}
        elif isinstance(obj, list):
            stack.extend(obj)
    # maps whose values are typed (annotations, sysctl, unified, rdma, ...) are not "unknown fields"
    for path in (("annotations",), ("linux", "sysctl"), ("linux", "resources", "unified"), ("linux", "resources", "rdma"),
                 ("linux", "netDevices"), ("linux", "timeOffsets")):
        obj = cfg
        for k in path:
            obj = obj[k]
        obj.pop("x-extra")
    assert schema_problems(cfg) == []


def test_unknown_schema_name() -> None:
    with pytest.raises(ValueError, match="unknown schema"):
        schema_problems({}, "bogus")


# --------------------------------------------------------------------------- each section rejects bad input

_set, _del = set_path, del_path


MAP = {"containerID": 0, "hostID": 1000, "size": 1}

INVALID: list[tuple[str, Callable[[dict], None], str, str]] = [
    # (id, mutation of everything-1.2.json, expected path, expected reason substring)
    ("top-not-object", lambda c: c.clear() or c.update({"0": 1}), "ociVersion", "required field is missing"),
    ("ociVersion", _set("ociVersion", "1.0"), "ociVersion", 'must be a 1.x SemVer version such as "1.0.2", got "1.0"'),
    ("root-missing", _del("root"), "root", "required field is missing"),
    ("root-path-type", _set("root.path", 7), "root.path", "expected string, got integer"),
    ("root-readonly", _set("root.readonly", "true"), "root.readonly", "expected boolean, got string"),
    ("process-cwd-relative", _set("process.cwd", "home"), "process.cwd", 'must be an absolute path, got "home"'),
    ("process-args-empty", _set("process.args", []), "process.args", "must not be empty"),
    ("process-args-missing", _del("process.args"), "process.args", "required field is missing"),
    ("process-env", _set("process.env", ["NOVALUE"]), "process.env[0]", "must have the form KEY=VALUE"),
    ("process-uid-range", _set("process.user.uid", 4294967295), "process.user.uid", "4294967295 is out of range 0..4294967294"),
    ("process-gid-float", _set("process.user.gid", 0.5), "process.user.gid", "expected integer, got number"),
    ("process-umask", _set("process.user.umask", -1), "process.user.umask", "-1 is out of range 0..4294967295"),
    ("process-console", _set("process.consoleSize", {"width": 80}), "process.consoleSize.height", "required field is missing"),
    ("process-cap-pattern", _set("process.capabilities.bounding", ["kill"]), "process.capabilities.bounding[0]", "must be a capability name"),
    ("process-rlimit", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1}]), "process.rlimits[0].hard", "required field is missing"),
    ("process-oom", _set("process.oomScoreAdj", -1001), "process.oomScoreAdj", "-1001 is out of range -1000..1000"),
    ("process-ioprio", _set("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}), "process.ioPriority.priority", "8 is out of range 0..7"),
    ("process-sched", _set("process.scheduler.flags", ["SCHED_FLAG_TURBO"]), "process.scheduler.flags[0]", '"SCHED_FLAG_TURBO" is not one of'),
    ("process-affinity", _set("process.execCPUAffinity.final", "all"), "process.execCPUAffinity.final", 'must be a CPU list like "0-3,7", got "all"'),
    ("mounts-type", _set("mounts", {"destination": "/x"}), "mounts", "expected array, got object"),
    ("mounts-destination", _del("mounts.0.destination"), "mounts[0].destination", "required field is missing"),
    ("mounts-options", _set("mounts.0.options", [1]), "mounts[0].options[0]", "expected string, got integer"),
    ("mounts-idmap", _set("mounts.0.uidMappings", [{"containerID": 0, "hostID": 0}]), "mounts[0].uidMappings[0].size", "required field is missing"),
    ("hooks-path", _set("hooks.prestart", [{"path": "hook"}]), "hooks.prestart[0].path", 'must be an absolute path, got "hook"'),
    ("hooks-timeout", _set("hooks.poststop.0.timeout", 0), "hooks.poststop[0].timeout", "0 is out of range 1.."),
    ("hooks-args", _set("hooks.createRuntime.0.args", "a b"), "hooks.createRuntime[0].args", "expected array, got string"),
    ("hooks-env", _set("hooks.startContainer.0.env", ["X"]), "hooks.startContainer[0].env[0]", "must have the form KEY=VALUE"),
    ("annotations", _set("annotations", {"k": 1}), "annotations.k", "expected string, got integer"),
    ("hostname", _set("hostname", None), "hostname", "expected string, got null"),
    ("namespaces-type", _set("linux.namespaces.0.type", "proc"), "linux.namespaces[0].type", '"proc" is not one of'),
    ("namespaces-missing-type", _set("linux.namespaces.0", {"path": "/proc/1/ns/pid"}), "linux.namespaces[0].type", "required field is missing"),
    ("namespaces-path", _set("linux.namespaces.0.path", "ns/pid"), "linux.namespaces[0].path", "must be an absolute path"),
    ("idmappings-size", _set("linux.uidMappings", [{**MAP, "size": 0}]), "linux.uidMappings[0].size", "0 is out of range 1..4294967295"),
    ("idmappings-hostid", _set("linux.gidMappings", [{**MAP, "hostID": "1000"}]), "linux.gidMappings[0].hostID", "expected integer, got string"),
    ("timeoffsets", _set("linux.timeOffsets", {"realtime": {"secs": 1}}), "linux.timeOffsets", '"realtime" is not one of'),
    ("timeoffsets-nsec", _set("linux.timeOffsets.monotonic.nanosecs", 10**9), "linux.timeOffsets.monotonic.nanosecs", "out of range 0..999999999"),
    ("devices-major", _del("linux.devices.0.major"), "linux.devices[0].major", "required field is missing"),
    ("devices-type", _set("linux.devices.0.type", "char"), "linux.devices[0].type", '"char" is not one of'),
    ("devices-path", _set("linux.devices.3.path", "fifo"), "linux.devices[3].path", "must be an absolute path"),
    ("devices-filemode", _set("linux.devices.0.fileMode", -1), "linux.devices[0].fileMode", "-1 is out of range"),
    ("resources-devices-allow", _del("linux.resources.devices.0.allow"), "linux.resources.devices[0].allow", "required field is missing"),
    ("resources-devices-access", _set("linux.resources.devices.0.access", "rwx"), "linux.resources.devices[0].access", 'must be a combination of "r", "w" and "m"'),
    ("resources-memory-limit", _set("linux.resources.memory.limit", "1G"), "linux.resources.memory.limit", "expected integer, got string"),
    ("resources-memory-huge", _set("linux.resources.memory.limit", 2**63), "linux.resources.memory.limit", "is out of range -9223372036854775808..9223372036854775807"),
    ("resources-memory-oom", _set("linux.resources.memory.disableOOMKiller", 0), "linux.resources.memory.disableOOMKiller", "expected boolean, got integer"),
    ("resources-cpu-shares", _set("linux.resources.cpu.shares", -2), "linux.resources.cpu.shares", "-2 is out of range 0.."),
    ("resources-cpu-cpus", _set("linux.resources.cpu.cpus", "0-3 5"), "linux.resources.cpu.cpus", "must be a CPU list"),
    ("resources-blkio-weight", _set("linux.resources.blockIO.weight", 70000), "linux.resources.blockIO.weight", "70000 is out of range 0..65535"),
    ("resources-blkio-rate", _del("linux.resources.blockIO.throttleReadBpsDevice.0.rate"), "linux.resources.blockIO.throttleReadBpsDevice[0].rate", "required field is missing"),
    ("resources-hugepage", _set("linux.resources.hugepageLimits.0.pageSize", "2M"), "linux.resources.hugepageLimits[0].pageSize", 'must be a page size like "2MB"'),
    ("resources-network", _set("linux.resources.network.priorities.0", {"name": "eth0"}), "linux.resources.network.priorities[0].priority", "required field is missing"),
    ("resources-pids", _set("linux.resources.pids.limit", "max"), "linux.resources.pids.limit", "expected integer, got string"),
    ("resources-rdma", _set("linux.resources.rdma.mlx5_1.hcaHandles", -1), "linux.resources.rdma.mlx5_1.hcaHandles", "-1 is out of range"),
    ("resources-unified", _set("linux.resources.unified", {"memory.max": 1}), 'linux.resources.unified["memory.max"]', "expected string, got integer"),
    ("intelrdt", _set("linux.intelRdt.enableMonitoring", 1), "linux.intelRdt.enableMonitoring", "expected boolean, got integer"),
    ("sysctl", _set("linux.sysctl", {"net.ipv4.ip_forward": 1}), 'linux.sysctl["net.ipv4.ip_forward"]', "expected string, got integer"),
    ("seccomp-default", _del("linux.seccomp.defaultAction"), "linux.seccomp.defaultAction", "required field is missing"),
    ("seccomp-action", _set("linux.seccomp.syscalls.0.action", "SCMP_ACT_DROP"), "linux.seccomp.syscalls[0].action", '"SCMP_ACT_DROP" is not one of'),
    ("seccomp-arch", _set("linux.seccomp.architectures", ["amd64"]), "linux.seccomp.architectures[0]", '"amd64" is not one of'),
    ("seccomp-flags", _set("linux.seccomp.flags", ["TSYNC"]), "linux.seccomp.flags[0]", '"TSYNC" is not one of'),
    ("seccomp-listener", _set("linux.seccomp.listenerPath", "agent.sock"), "linux.seccomp.listenerPath", "must be an absolute path"),
    ("seccomp-names", _set("linux.seccomp.syscalls.0.names", []), "linux.seccomp.syscalls[0].names", "must not be empty"),
    ("seccomp-errno", _set("linux.seccomp.syscalls.0.errnoRet", -1), "linux.seccomp.syscalls[0].errnoRet", "-1 is out of range"),
    ("seccomp-arg-op", _set("linux.seccomp.syscalls.8.args.0.op", "=="), "linux.seccomp.syscalls[8].args[0].op", '"==" is not one of'),
    ("seccomp-arg-value", _set("linux.seccomp.syscalls.8.args.0.value", 2**64), "linux.seccomp.syscalls[8].args[0].value", "out of range 0..18446744073709551615"),
    ("propagation", _set("linux.rootfsPropagation", "none"), "linux.rootfsPropagation", '"none" is not one of'),
    ("masked-paths", _set("linux.maskedPaths", ["proc/kcore"]), "linux.maskedPaths[0]", "must be an absolute path"),
    ("readonly-paths", _set("linux.readonlyPaths", "/proc"), "linux.readonlyPaths", "expected array, got string"),
    ("personality", _set("linux.personality.domain", "LINUX64"), "linux.personality.domain", '"LINUX64" is not one of'),
    ("memory-policy", _del("linux.memoryPolicy.mode"), "linux.memoryPolicy.mode", "required field is missing"),
    ("net-devices", _set("linux.netDevices.eth1.name", 3), "linux.netDevices.eth1.name", "expected string, got integer"),
]


@pytest.mark.parametrize("mutate,path,reason", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_config_schema_rejects(mutate: Callable[[dict], None], path: str, reason: str) -> None:
    cfg = load(CORPUS / "everything-1.2.json")
    mutate(cfg)
    problems = schema_problems(cfg)
    assert any(p.path == path and reason in p.reason and not p.warning for p in problems), (
        f"expected {path}: ...{reason}... in:\n" + "\n".join(map(str, problems)))


def test_schema_reports_all_errors_sorted() -> None:
    cfg = load(CORPUS / "everything-1.2.json")
    cfg["process"]["user"]["uid"] = -1
    cfg["linux"]["namespaces"][10 % len(cfg["linux"]["namespaces"])]["type"] = "x"
    cfg["mounts"][0]["destination"] = 5
    cfg["ociVersion"] = 1
    problems = schema_problems(cfg)
    assert [p.path for p in problems] == ["linux.namespaces[2].type", "mounts[0].destination", "ociVersion", "process.user.uid"]


def test_schema_integer_is_strict() -> None:
    """JSON 1.0 is not an integer for Go (runc), nor for our schema; booleans neither."""
    cfg = load(BUSYBOX_CONFIG)
    cfg["process"]["user"]["uid"] = 0.0
    cfg["process"]["user"]["gid"] = False
    assert schema_problems(cfg) == [
        Problem("process.user.gid", "expected integer, got boolean"),
        Problem("process.user.uid", "expected integer, got number"),
    ]


def test_schema_huge_integer() -> None:
    cfg = load(BUSYBOX_CONFIG)
    cfg["process"]["rlimits"][0]["hard"] = 10**5000
    assert schema_problems(cfg) == [
        Problem("process.rlimits[0].hard", "an integer of more than 40 digits is out of range 0..18446744073709551615")]


@pytest.mark.parametrize("doc", [[], None, "config", 1])
def test_schema_non_object(doc: object) -> None:
    problems = schema_problems(doc)
    assert problems and problems[0].path == "" and "expected object" in problems[0].reason


# --------------------------------------------------------------------------- state schema

STATE = {"ociVersion": "1.0.2", "id": "demo", "status": "running", "pid": 42, "bundle": "/srv/demo", "annotations": {"a": "b"}}


def _state(**changes: Any) -> dict:
    doc = copy.deepcopy(STATE)
    for k, v in changes.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    return doc


@pytest.mark.parametrize("doc,path,reason", [
    (_state(status="paused"), "status", '"paused" is not one of: creating, created, running, stopped'),
    (_state(id=None), "id", "required field is missing"),
    (_state(id=""), "id", "must not be empty"),
    (_state(bundle="relative"), "bundle", "must be an absolute path"),
    (_state(bundle=None), "bundle", "required field is missing"),
    (_state(pid=None), "pid", "required field is missing"),
    (_state(status="created", pid=0), "pid", "less than the minimum of 1"),
    (_state(pid=-5), "pid", "out of range"),
    (_state(pid="42"), "pid", "expected integer, got string"),
    (_state(ociVersion="one"), "ociVersion", "must be a 1.x SemVer version"),
    (_state(annotations={"a": None}), "annotations.a", "expected string, got null"),
], ids=["status", "id-missing", "id-empty", "bundle-relative", "bundle-missing", "pid-missing-running", "pid-zero-created",
        "pid-negative", "pid-type", "version", "annotation"])
def test_state_schema_rejects(doc: dict, path: str, reason: str) -> None:
    problems = schema_problems(doc, "state")
    assert any(p.path == path and reason in p.reason for p in problems), "\n".join(map(str, problems))


def test_state_schema_accepts() -> None:
    assert schema_problems(STATE, "state") == []
    assert schema_problems(_state(status="stopped", pid=None), "state") == []
    assert schema_problems(_state(status="creating", pid=None, rootfs="/x", owner=""), "state") == []
