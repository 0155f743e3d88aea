"""containerd with runc (the oracle) and pyoci, configured exactly as the README's engine guide says: `ctr run
--runc-binary` and a runtime handler of the CRI plugin (what the kubelet runs a RuntimeClass's pods with).

Debian 12's containerd 1.6 in the guest, one daemon of this module's own: its config.toml is the README's snippet
``containerd config.toml`` (on the guest with systemd as PID 1, ``containerd config.toml systemd``, with
SystemdCgroup = true: tests/systemd/test_systemd_containerd.py collects this module there) with this module's
wrapper (``logging_wrapper``) in place of /path/to/.venv/bin/pyoci, plus the oracle's handler ``test-runc`` and a
CNI directory of its own; root, state and socket are in the tmp dir (a tmpfs), given on containerd's command
line. `containerd config dump` must show the handler as the README wrote it. The image is the busybox rootfs of
tests/conftest.py as an OCI archive (``oci_archive``; the guest has no registry), imported with `ctr images
import` under the README's name, and also as containerd's own sandbox ("pause") image, whose command sleeps.

* test_ctr_run: the README's ``ctr run`` snippet as written (its `ctr image pull` becomes an import of the same
  name), in a containerd namespace of the test's own: the output, the runtime under test really called; the
  same command line with `sh -c 'exit 3'`: ctr's exit status.
* test_cri_handler: the CRI calls of a pod's life, as the kubelet makes them, through tests/v2/cri.py (no Debian
  suite packages crictl): RunPodSandbox with the runtime handler (host network: no CNI here), CreateContainer
  with a 64 MiB limit, StartContainer, ExecSync (its output and exit status 7), the limit on the host side (and
  on the systemd guest the unit cri-containerd-ID.scope with MemoryMax), StopContainer (SIGTERM reaches the
  init: exit 0), the container's CRI log, RemoveContainer, StopPodSandbox, RemovePodSandbox.
Each container is checked gone afterwards (no state in the runtime, no cgroup, no mount); when the daemon stops,
whatever it left (processes, mounts, cgroups, /run entries: ``leftovers``) fails the module.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import cgroup_dirs_named, mounts_mentioning, wait_for
from v2.test_engines import (README_PYOCI, RUNTIMES, SYSTEMD, cgroup_dirs, cgroup_of, leftovers, logging_wrapper,
                             readme_snippet, run_cmd, systemctl_show)

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024
CTR_SNIPPET = "ctr run systemd" if SYSTEMD else "ctr run"
CONFIG_SNIPPET = "containerd config.toml systemd" if SYSTEMD else "containerd config.toml"
HANDLERS = {"runc": "test-runc", "pyoci": "pyoci"}  # pyoci's is the README's
CRI = "io.containerd.grpc.v1.cri"
CRI_NAMESPACE = "k8s.io"  # the containerd namespace of the CRI plugin's images and containers
SHIM_ROOT = "/run/containerd/runc"  # the runc shim's --root for the runtime: SHIM_ROOT/<namespace>
CRI_CLIENT = Path(__file__).with_name("cri.py")
GUEST_PYTHON = "/usr/bin/python3"  # the guest root's, with Debian's grpcio
LONG_RUNNING = ["sh", "-c", 'echo started; trap "exit 0" TERM; sleep 1000000 & wait']


def oci_archive(rootfs: Path, dest: Path, images: dict[str, dict[str, Any]]) -> Path:
    """An OCI image layout tarball, what `ctr images import` reads: the rootfs as one layer, and one image per
    name (``io.containerd.image.name``) with that image config (the image spec's ``config``: Cmd, Env...)."""
    work = dest.with_suffix(".d")
    blobs = work / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    layer = blob(subprocess.run(["tar", "-C", str(rootfs), "-cf", "-", "."], check=True, stdout=subprocess.PIPE
                                ).stdout, "application/vnd.oci.image.layer.v1.tar")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    manifests = []
    for name, config in images.items():
        cfg = blob(json.dumps({"architecture": arch, "os": "linux", "config": config,
                               "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode(),
                   "application/vnd.oci.image.config.v1+json")
        manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                    "config": cfg, "layers": [layer]}).encode(),
                        "application/vnd.oci.image.manifest.v1+json")
        manifest["annotations"] = {"io.containerd.image.name": name,
                                   "org.opencontainers.image.ref.name": name.rpartition(":")[2]}
        manifests.append(manifest)
    (work / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    (work / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    subprocess.run(["tar", "-C", str(work), "-cf", str(dest), "."], check=True)
    return dest


class Containerd:
    """One containerd of the test's own (config, root, state, socket in ``dir``), stopped by the pid it started."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.sock = dir / "containerd.sock"
        self.config = dir / "config.toml"
        self.wrappers = {rt: logging_wrapper(dir / rt, real, self.calls_log(rt)) for rt, real in RUNTIMES.items()}
        self.archive = dir / "images.tar"  # the test's images (oci_archive), imported in each namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroups_before: set[str] = set()
        self.run_before: set[str] = set()

    def calls_log(self, runtime: str) -> Path:
        return self.dir / ("calls-%s.log" % runtime)

    def calls(self, runtime: str, subcommand: str, cid: str) -> list[str]:
        """The runtime's calls `SUBCOMMAND ... <cid>`, as its wrapper logged them."""
        try:
            lines = self.calls_log(runtime).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [c for c in lines if subcommand in c.split() and cid in c.split()]

    def write_config(self) -> None:
        """The README's snippet for pyoci, then the oracle's handler and a CNI directory of the test's own (the
        pods here use the host's network; the CRI plugin would otherwise watch /etc/cni/net.d)."""
        options = "  SystemdCgroup = true\n" if SYSTEMD else ""
        self.config.write_text(
            readme_snippet(CONFIG_SNIPPET, self.wrappers["pyoci"]).rstrip("\n") + "\n"
            '[plugins."%s".containerd.runtimes.%s]\n  runtime_type = "io.containerd.runc.v2"\n'
            '[plugins."%s".containerd.runtimes.%s.options]\n  BinaryName = "%s"\n%s'
            '[plugins."%s".cni]\n  bin_dir = "%s/cni/bin"\n  conf_dir = "%s/cni/net.d"\n'
            % (CRI, HANDLERS["runc"], CRI, HANDLERS["runc"], self.wrappers["runc"], options, CRI, self.dir, self.dir))

    def start(self) -> None:
        self.cgroups_before = cgroup_dirs()
        self.run_before = set(os.listdir("/run"))
        self.write_config()
        d = self.dir
        with open(d / "containerd.log", "ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.config), "--root", str(d / "root"),
                                          "--state", str(d / "state"), "--address", str(self.sock)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc
        wait_for(lambda: proc.poll() is not None or (self.sock.exists() and self.ctr("version").returncode == 0),
                 90, interval=0.5, what="containerd to answer")
        assert proc.poll() is None, "containerd exited %s:\n%s" % (proc.returncode, self.log_tail())
        last: list[str] = []

        def cri_up() -> bool:
            r = self.cri_call("RuntimeService/Version")[0]
            last[:] = [r.stderr.strip()]
            return proc.poll() is not None or r.returncode == 0

        try:
            wait_for(cri_up, 90, interval=0.5, what="the CRI plugin to answer")
        except AssertionError as e:
            raise AssertionError("%s: %s\ncontainerd's log:\n%s" % (e, last, self.log_tail())) from None
        assert proc.poll() is None, "containerd exited %s:\n%s" % (proc.returncode, self.log_tail())

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.dir / "containerd.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def config_dump(self) -> dict[str, Any]:
        """`containerd config dump`: the configuration containerd runs with, its defaults filled in."""
        r = run_cmd(["containerd", "--config", str(self.config), "config", "dump"])
        assert r.returncode == 0, r.stderr
        return tomllib.loads(r.stdout)

    def ctr(self, *args: Any, namespace: str = CRI_NAMESPACE) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, CONTAINERD_ADDRESS=str(self.sock), CONTAINERD_NAMESPACE=namespace)
        return run_cmd(["ctr", *map(str, args)], env=env)

    def cri_call(self, method: str, request: dict[str, Any] | None = None
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        r = run_cmd([GUEST_PYTHON, str(CRI_CLIENT), str(self.sock), method, json.dumps(request or {})])
        return r, json.loads(r.stdout) if r.returncode == 0 else {}

    def cri(self, method: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        r, resp = self.cri_call(method, request)
        assert r.returncode == 0, "%s: rc=%d %s\ncontainerd's log:\n%s" % (method, r.returncode, r.stderr.strip(),
                                                                           self.log_tail(15))
        return resp

    def stop(self) -> list[str]:
        """Stop the daemon (SIGTERM to the pid this module started); return what it left behind."""
        proc, self.proc = self.proc, None
        problems: list[str] = []
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                problems.append("containerd (pid %d) ignored SIGTERM for 60 s:\n%s" % (proc.pid, self.log_tail()))
        return problems + leftovers("containerd", str(self.dir), self.cgroups_before, self.run_before)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Containerd]:
    c = Containerd(tmp_path_factory.mktemp("containerd"))
    c.start()
    try:
        # the sandbox image named as containerd's default (no sandbox_image to configure): a command that sleeps
        sandbox_image = c.config_dump()["plugins"][CRI]["sandbox_image"]
        oci_archive(rootfs, c.archive, {
            ctr_image(): {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            sandbox_image: {"Entrypoint": ["sh", "-c", 'trap "exit 0" TERM; sleep 1000000 & wait'],
                            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}})
        r = c.ctr("images", "import", c.archive)
        assert r.returncode == 0, r.stderr
        yield c
    finally:
        problems = c.stop()
        assert not problems, "left behind:\n" + "\n".join(problems)


def ctr_lines() -> list[list[str]]:
    """The README's ctr snippet, each `ctr ...` command (with its backslash-continued lines) split as the shell
    would, pyoci's path left in."""
    text = readme_snippet(CTR_SNIPPET, Path(README_PYOCI)).replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.startswith("ctr ")]


def ctr_image() -> str:
    """The image the README's ctr snippet pulls (and the CRI test's containers run)."""
    (pull,) = [argv for argv in ctr_lines() if argv[1:3] == ["image", "pull"]]
    return pull[3]


def test_containerd_loads_the_handler(containerd: Containerd) -> None:
    """containerd runs with the README's runtime handler as written, and its CRI plugin is up."""
    runtimes = containerd.config_dump()["plugins"][CRI]["containerd"]["runtimes"]
    p = runtimes["pyoci"]
    assert p["runtime_type"] == "io.containerd.runc.v2", p
    assert p["options"]["BinaryName"] == str(containerd.wrappers["pyoci"]), p
    assert p["options"].get("SystemdCgroup", False) is SYSTEMD, p
    plugins = containerd.ctr("plugins", "ls").stdout
    assert re.search(r"^io\.containerd\.grpc\.v1\s+cri\s.*\sok\s*$", plugins, re.M), plugins


@pytest.mark.parametrize("runtime", ["runc", "pyoci"])
def test_ctr_run(containerd: Containerd, runtime: str) -> None:
    """The README's ctr lines, the runtime's wrapper in place of pyoci's path: the container's output is its
    cgroup (runc's default path /<namespace>/<id>; on the systemd guest the scope its --cgroup names), ctr exits
    with the container's status."""
    ns = "pyoci-%s" % uuid.uuid4().hex[:10]
    r = containerd.ctr("images", "import", containerd.archive, namespace=ns)
    assert r.returncode == 0, r.stderr
    wrapper = str(containerd.wrappers[runtime])
    (run,) = [[wrapper if a == README_PYOCI else a for a in argv] for argv in ctr_lines()
              if argv[1] == "run"]
    cid = run[run.index(ctr_image()) + 1]
    try:
        r = containerd.ctr(*run[1:], namespace=ns)
        expected = "0::/system.slice/ctr-%s.scope" % cid if SYSTEMD else "0::/%s/%s" % (ns, cid)
        assert (r.returncode, r.stdout.strip()) == (0, expected), (r.returncode, r.stdout, r.stderr)
        created = [c for c in containerd.calls(runtime, "create", cid) if "%s/%s" % (SHIM_ROOT, ns) in c]
        assert created, "the %s wrapper was never asked to create %s" % (runtime, cid)
        assert ("--systemd-cgroup" in created[0].split()) is SYSTEMD, created
        r = containerd.ctr(*run[1:run.index(cid) + 1], "sh", "-c", "exit 3", namespace=ns)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert containerd.ctr("containers", "ls", "-q", namespace=ns).stdout.split() == []
    finally:
        containerd.ctr("tasks", "delete", "-f", cid, namespace=ns)
        containerd.ctr("containers", "delete", cid, namespace=ns)
        containerd.ctr("images", "rm", ctr_image(), namespace=ns)
        containerd.ctr("namespaces", "remove", ns)
    assert_gone(runtime, ns, cid)
    if not SYSTEMD:
        remove_parent(CG / ns)


def remove_parent(d: Path) -> None:
    """The parent cgroup a cgroupsPath made (runc keeps it, pyoci removes it once empty): empty if still there."""
    if d.exists():
        d.rmdir()


def assert_gone(runtime: str, ns: str, *cids: str) -> None:
    """No state in the runtime (the shim's --root for the namespace), no cgroup, no mount of the containers."""
    for cid in cids:
        state = run_cmd([*RUNTIMES[runtime], "--root", "%s/%s" % (SHIM_ROOT, ns), "state", cid])
        assert state.returncode != 0, "%s still has state for %s: %s" % (runtime, cid, state.stdout)
    assert not cgroup_dirs_named(list(cids)), cgroup_dirs_named(list(cids))
    assert not mounts_mentioning(*cids), mounts_mentioning(*cids)


@pytest.mark.parametrize("runtime", ["runc", "pyoci"])
def test_cri_handler(containerd: Containerd, runtime: str) -> None:
    """A pod's life through the CRI with the runtime handler, as the kubelet runs a pod whose RuntimeClass has
    `handler: pyoci` (the oracle: test-runc)."""
    uid = uuid.uuid4().hex
    logs = containerd.dir / "pods" / uid
    logs.mkdir(parents=True)
    # runc's rules: with SystemdCgroup the slice's base name, else a path (a slice would become slice:prefix:id)
    parent = "system.slice" if SYSTEMD else "/pyoci-cri-%s" % uid[:10]
    sandbox_config = {"metadata": {"name": "pyoci-%s" % runtime, "uid": uid, "namespace": "default"},
                      "log_directory": str(logs),
                      "linux": {"cgroup_parent": parent,
                                "security_context": {"namespace_options": {"network": "NODE"}}}}
    image = ctr_image()
    wait_for(lambda: containerd.cri("ImageService/ImageStatus", {"image": {"image": image}}).get("image"), 30,
             interval=0.5, what="the CRI plugin to see %s" % image)
    sid = cid = ""
    try:
        sid = containerd.cri("RuntimeService/RunPodSandbox", {"config": sandbox_config,
                                                               "runtime_handler": HANDLERS[runtime]})["pod_sandbox_id"]
        assert containerd.calls(runtime, "create", sid), "the %s wrapper never created the sandbox" % runtime
        cid = containerd.cri("RuntimeService/CreateContainer", {
            "pod_sandbox_id": sid, "sandbox_config": sandbox_config,
            "config": {"metadata": {"name": "app"}, "image": {"image": image}, "command": LONG_RUNNING,
                       "log_path": "app.log", "linux": {"resources": {"memory_limit_in_bytes": 64 * MiB}}}})[
            "container_id"]
        containerd.cri("RuntimeService/StartContainer", {"container_id": cid})
        created = containerd.calls(runtime, "create", cid)
        assert created, "the %s wrapper was never asked to create %s" % (runtime, cid)
        assert ("--systemd-cgroup" in created[0].split()) is SYSTEMD, created

        r = containerd.cri("RuntimeService/ExecSync", {"container_id": cid, "timeout": 60,
                                                        "cmd": ["sh", "-c", "echo out; echo err >&2; exit 7"]})
        assert (r["exit_code"], base64.b64decode(r["stdout"]), base64.b64decode(r["stderr"])) == (
            7, b"out\n", b"err\n"), r
        assert containerd.calls(runtime, "exec", cid), "the %s wrapper was never asked to exec in %s" % (runtime, cid)
        state = json.loads(run_cmd([*RUNTIMES[runtime], "--root", "%s/%s" % (SHIM_ROOT, CRI_NAMESPACE), "state",
                                    cid]).stdout)
        cgroup = cgroup_of(state["pid"])
        assert (cgroup / "memory.max").read_text().strip() == str(64 * MiB)
        if SYSTEMD:
            assert cgroup == CG / "system.slice" / ("cri-containerd-%s.scope" % cid), cgroup
            p = systemctl_show(cgroup.name, "ActiveState", "MemoryMax", "Delegate")
            assert p == {"ActiveState": "active", "MemoryMax": str(64 * MiB), "Delegate": "yes"}, p
        else:
            assert cgroup == CG / parent.lstrip("/") / cid, cgroup

        t0 = time.monotonic()
        containerd.cri("RuntimeService/StopContainer", {"container_id": cid, "timeout": 30})
        took = time.monotonic() - t0
        status = containerd.cri("RuntimeService/ContainerStatus", {"container_id": cid})["status"]
        assert (status["state"], status["exit_code"]) == ("CONTAINER_EXITED", 0), status
        assert took < 30, "StopContainer took %.1fs: SIGTERM was not delivered" % took
        log = (logs / "app.log").read_text().splitlines()
        assert [line.split(" ", 1)[1] for line in log] == ["stdout F started"], log
        containerd.cri("RuntimeService/RemoveContainer", {"container_id": cid})
        containerd.cri("RuntimeService/StopPodSandbox", {"pod_sandbox_id": sid})
        containerd.cri("RuntimeService/RemovePodSandbox", {"pod_sandbox_id": sid})
        assert containerd.cri("RuntimeService/ListPodSandbox", {"filter": {"id": sid}}).get("items") == [], sid
    finally:
        if cid:
            containerd.cri_call("RuntimeService/RemoveContainer", {"container_id": cid})
        if sid:
            containerd.cri_call("RuntimeService/StopPodSandbox", {"pod_sandbox_id": sid})
            containerd.cri_call("RuntimeService/RemovePodSandbox", {"pod_sandbox_id": sid})
    assert_gone(runtime, CRI_NAMESPACE, sid, cid)
    if SYSTEMD:
        assert systemctl_show("cri-containerd-%s.scope" % cid, "LoadState") == {"LoadState": "not-found"}
    else:  # the pod's parent (the kubelet's to remove)
        remove_parent(CG / parent.lstrip("/"))
