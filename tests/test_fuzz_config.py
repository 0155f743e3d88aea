"""Property test: whatever config.json says, `pyoci create` ends cleanly.

A valid busybox config is mutated (wrong types, missing fields, nulls, huge numbers,
odd strings, extra fields) and handed to `pyoci create`.  The outcome must be one of:

* exit status != 0 with a one-line error on stderr (warnings aside) and no traceback;
* a created container, which `pyoci state` reports and `pyoci delete --force` removes.

Never a hang (every command runs under a timeout), never leftovers: the private --root
state directory is empty afterwards, no mount and no process refers to the example's
directory, and no cgroup is named after the container.

Safety: mutations that could touch the host if pyoci had a bug are not generated, or are
only generated when pyoci.validate rejects the config (pyoci validates before it creates
anything): the config must keep a private mount namespace, root.path must stay inside the
example's directory, mount destinations must not contain "..", and no cgroupsPath or hook
is ever added.

Needs root and a static busybox (for bundles/busybox/build-rootfs.sh); skipped otherwise.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pyoci.validate import has_errors, schema_problems, validate_config

REPO = Path(__file__).resolve().parent.parent
BUSYBOX = REPO / "bundles" / "busybox"
TIMEOUT = 20  # seconds per pyoci command; a hang is a failure

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pyoci create needs root")


def _pyoci_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "pyoci"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pyoci"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(args: list[str], out_dir: Path, name: str) -> tuple[int, str, str]:
    """Run pyoci with stdout/stderr in files (a created container inherits them, so pipes
    would never reach EOF) and a hard timeout; a hang kills the whole process group."""
    out_path, err_path = out_dir / f"{name}.out", out_dir / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(_pyoci_cmd() + args, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=_env(), start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"pyoci {' '.join(args)} hung for more than {TIMEOUT}s\nstderr: "
                        + err_path.read_text(errors="replace")[-2000:])
    return rc, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def fuzz_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("fuzz-rootfs") / "rootfs"
    res = subprocess.run(["sh", str(BUSYBOX / "build-rootfs.sh"), str(dest)], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        pytest.skip("cannot build the busybox rootfs: " + res.stderr.strip())
    return dest


def base_config() -> dict:
    cfg = json.loads((BUSYBOX / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", "exit 0"]
    return cfg


# --------------------------------------------------------------------------- mutations

BAD_STRINGS = ["", "/", ".", "..", "../../..", "rootfs", "/proc/self/ns/net", "/dev/null", "a\x00b", "x" * 5000,
               "\u2603", "pid", "user", "CAP_SYS_ADMIN", "RLIMIT_NOFILE", "SCMP_ACT_ALLOW", "1.0.2", "2.0.0", "-1",
               "rwm", "c", "tmpfs", "nosuid", "KEY=VALUE", "=", "\n"]
BAD_INTS = [0, -1, 1, 7, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30)]
FIELD_NAMES = ["type", "path", "destination", "source", "options", "uid", "gid", "major", "minor", "soft", "hard",
               "names", "action", "containerID", "hostID", "size", "allow", "access", "limit"]
LEAF = st.one_of(
    st.none(), st.booleans(), st.sampled_from(BAD_INTS), st.sampled_from(BAD_STRINGS),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=6),
)
VALUE = st.one_of(
    LEAF,
    st.lists(LEAF, max_size=3),
    st.dictionaries(st.sampled_from(FIELD_NAMES), LEAF, max_size=3),
    st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), LEAF, max_size=3), min_size=1, max_size=2),
)
# Keys that may be added to an object (never cgroupsPath or hooks: see the module docstring).
ADDED_KEYS = ["terminal", "cwd", "env", "user", "rlimits", "capabilities", "noNewPrivileges", "oomScoreAdj",
              "consoleSize", "domainname", "annotations", "uidMappings", "gidMappings", "devices", "sysctl",
              "seccomp", "timeOffsets", "maskedPaths", "readonlyPaths", "rootfsPropagation", "personality",
              "resources", "memory", "pids", "umask", "additionalGids", "x-unknown"]


def _paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _parent(doc: Any, path: tuple) -> Any:
    for k in path[:-1]:
        doc = doc[k]
    return doc


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[dict, list[str]]:
    cfg: Any = base_config()
    log: list[str] = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = [p for p in _paths(cfg) if p]
        if not paths or not isinstance(cfg, dict):
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(cfg, path)
        action = draw(st.sampled_from(["replace", "replace", "delete", "add-key", "append"]))
        if action == "replace":
            parent[path[-1]] = value = draw(VALUE)
            log.append(f"set {path} = {value!r:.80}")
        elif action == "delete":
            del parent[path[-1]]
            log.append(f"delete {path}")
        elif action == "add-key" and isinstance(parent, dict):
            key = draw(st.sampled_from(ADDED_KEYS))
            parent[key] = value = draw(VALUE)
            log.append(f"add {path[:-1] + (key,)} = {value!r:.80}")
        elif action == "append" and isinstance(parent[path[-1]], list):
            parent[path[-1]].append(value := draw(VALUE))
            log.append(f"append to {path}: {value!r:.80}")
    return cfg, log


def _is_safe(cfg: Any, bundle: Path) -> bool:
    """Could this config touch the host if pyoci mishandled it? (See the module docstring.)"""
    if has_errors(validate_config(cfg, bundle, full=True)):
        return True  # pyoci refuses it before creating anything
    linux = cfg.get("linux")
    ns = linux.get("namespaces") if isinstance(linux, dict) else None
    if not (isinstance(ns, list) and any(isinstance(n, dict) and n.get("type") == "mount" and not n.get("path") for n in ns)):
        return False
    if isinstance(linux, dict) and "cgroupsPath" in linux:
        return False
    mounts = cfg.get("mounts") or []
    if any(".." in str(m.get("destination", "")).split("/") for m in mounts if isinstance(m, dict)):
        return False  # a runtime must keep these inside the rootfs; not worth risking this machine on it
    root = cfg["root"]["path"]
    resolved = os.path.realpath(os.path.join(bundle, root))
    return resolved.startswith(str(bundle) + os.sep)


# --------------------------------------------------------------------------- leftovers

def _leftovers(top: Path, state_root: Path, container_id: str) -> list[str]:
    found = []
    if state_root.exists() and any(state_root.iterdir()):
        found.append(f"state dir not empty: {sorted(p.name for p in state_root.rglob('*'))}")
    with open("/proc/self/mountinfo") as f:
        found += [f"mount left: {line.strip()}" for line in f if str(top) in line]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for what in ("root", "cwd"):
            try:
                target = os.readlink(f"/proc/{pid}/{what}")
            except OSError:
                continue
            if target.startswith(str(top)):
                found.append(f"process {pid} left with {what} {target}")
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        if dirpath.count("/") > 9:
            dirnames.clear()
        found += [f"cgroup left: {dirpath}/{d}" for d in dirnames if container_id in d]
    return found


def _clean_up(top: Path, state_root: Path, container_id: str) -> None:
    """Best effort after a failure, so one bad example does not poison the next ones."""
    _run(["--root", str(state_root), "delete", "--force", container_id], top, "cleanup")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/root").startswith(str(top)):
                os.kill(int(pid), signal.SIGKILL)  # a container process this test created
        except OSError:
            pass
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if str(top) in line.split()[4]]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _error_lines(stderr: str) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return [ln for ln in lines if "level=warning" not in ln and '"level": "warning"' not in ln
            and not ln.lower().startswith("warning")]


_counter = iter(range(10**9))


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
@given(example=mutated_configs())
def test_create_never_crashes_or_leaks(fuzz_rootfs: Path, tmp_path: Path, example: tuple[dict, list[str]]) -> None:
    cfg, log = example
    n = next(_counter)
    top = tmp_path / f"ex{n}"
    bundle, state_root = top / "bundle", top / "state"
    bundle.mkdir(parents=True)
    state_root.mkdir()
    shutil.copytree(fuzz_rootfs, bundle / "rootfs", symlinks=True)
    assume(_is_safe(cfg, bundle))
    (bundle / "config.json").write_text(json.dumps(cfg))
    container_id = f"pyoci-fuzz-{os.getpid()}-{n}"
    where = "mutations: " + ("; ".join(log) or "none")
    try:
        rc, _, err = _run(["--root", str(state_root), "create", "--bundle", str(bundle), container_id], top, "create")
        assert "Traceback" not in err, f"{where}\n{err}"
        event("created" if rc == 0 else "refused")
        if rc != 0:
            errors = _error_lines(err)
            assert len(errors) == 1, f"expected a one-line error, got:\n{err}\n{where}"
            assert errors[0].strip(), where
        else:
            rc_state, out, err_state = _run(["--root", str(state_root), "state", container_id], top, "state")
            assert rc_state == 0 and "Traceback" not in err_state, f"{where}\n{err_state}"
            state = json.loads(out)
            assert state.get("status") == "created", f"{where}\n{out}"
            assert schema_problems(state, "state") == [], f"{where}\n{out}"
            rc_del, _, err_del = _run(["--root", str(state_root), "delete", "--force", container_id], top, "delete")
            assert rc_del == 0 and "Traceback" not in err_del, f"{where}\n{err_del}"
        left = _leftovers(top, state_root, container_id)
        assert not left, f"{where}\n" + "\n".join(left)
    except BaseException:
        _clean_up(top, state_root, container_id)
        raise
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_unmutated_config_creates(fuzz_rootfs: Path, tmp_path: Path) -> None:
    """Sanity check for the property test: the base config must give a working container."""
    bundle, state_root = tmp_path / "bundle", tmp_path / "state"
    bundle.mkdir()
    state_root.mkdir()
    shutil.copytree(fuzz_rootfs, bundle / "rootfs", symlinks=True)
    cfg = base_config()
    assert validate_config(cfg, bundle, full=True) == []
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = f"pyoci-fuzz-{os.getpid()}-base"
    try:
        rc, _, err = _run(["--root", str(state_root), "create", "--bundle", str(bundle), cid], tmp_path, "create")
        assert rc == 0, err
        rc, _, err = _run(["--root", str(state_root), "delete", "--force", cid], tmp_path, "delete")
        assert rc == 0, err
        assert _leftovers(tmp_path, state_root, cid) == []
    except BaseException:
        _clean_up(tmp_path, state_root, cid)
        raise


def test_mutation_strategy_is_safe_by_construction() -> None:
    """ADDED_KEYS must never let the fuzzer write hooks or a cgroupsPath (host-affecting)."""
    assert "cgroupsPath" not in ADDED_KEYS and "hooks" not in ADDED_KEYS
    assert not {"prestart", "createRuntime", "createContainer", "cgroupsPath"} & set(FIELD_NAMES)
    cfg = base_config()
    assert copy.deepcopy(cfg) == cfg
