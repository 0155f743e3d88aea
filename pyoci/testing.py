"""pyoci.testing: run a container image from Python tests, with no engine and nothing left behind.

    import pyoci.testing

    r = pyoci.testing.run("rootfs/", ["echo", "hello"], config={"hostname": "box"})
    assert r.exit_code == 0 and r.stdout == "hello\\n"

The image is a rootfs directory or a tarball of one (`docker export` writes such a tarball; it is unpacked
into a private directory, device nodes and links out of it skipped). The bundle is `pyoci spec`'s default
config (no terminal) with ``config`` merged into it (objects merge, anything else replaces), the container runs
in the foreground with its own --root, and the bundle, the state and the container are removed afterwards
whatever happens. As a pytest plugin (``pytest_plugins = ["pyoci.testing"]``) it gives the fixture
``pyoci_run``, the same function with its files under the test's tmp_path. Needs root, as pyoci does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import pytest
except ImportError:  # the fixture needs pytest; run() does not
    pytest = None  # type: ignore[assignment]


@dataclass
class Result:
    exit_code: int  # the container's (128+N if killed by signal N); pyoci's own 1/2 on a refused config
    stdout: str
    stderr: str  # the container's stderr, and pyoci's one-line error if it refused to run it


def run(image: str | os.PathLike[str], args: list[str], *, config: dict[str, Any] | None = None,
        timeout: float = 120, workdir: str | os.PathLike[str] | None = None) -> Result:
    """Run args in a container made from image (a rootfs directory or tarball); see the module's docstring."""
    from pyoci import jsonio
    from pyoci.spec import default_config

    base = Path(tempfile.mkdtemp(prefix="pyoci-testing.", dir=workdir))
    try:
        bundle, root = base / "bundle", base / "root"
        bundle.mkdir()
        rootfs = _rootfs(Path(image), bundle)
        cfg = default_config()
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        cfg["root"] = {"path": str(rootfs), "readonly": True}
        _merge(cfg, config or {})
        (bundle / "config.json").write_text(jsonio.dumps(cfg, indent=2))
        cid = "testing-" + uuid.uuid4().hex[:12]
        argv = [sys.executable, "-m", "pyoci", "--root", str(root)]
        try:
            r = subprocess.run(argv + ["run", "--bundle", str(bundle), cid], capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        finally:
            subprocess.run(argv + ["delete", "--force", cid], capture_output=True)
        return Result(r.returncode, r.stdout, r.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _rootfs(image: Path, bundle: Path) -> Path:
    if image.is_dir():
        return image.resolve()
    import tarfile

    dest = bundle / "rootfs"
    dest.mkdir()
    with tarfile.open(image) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter=_keep)
        else:  # Python 3.11.2 (Debian 12's) has no extraction filters: the same rules, member by member
            for member in tar:
                if _keep_311_2(member, str(dest.resolve())):
                    tar.extract(member, dest)
    return dest


def _keep(member: Any, path: str) -> Any:
    import tarfile

    if member.isdev() or member.isfifo():
        return None  # the runtime makes /dev; an image's device nodes are not to be trusted
    try:
        return tarfile.data_filter(member, path)  # nothing outside dest, no setuid bits, no absolute links
    except tarfile.FilterError:
        return None


def _keep_311_2(member: Any, dest: str) -> bool:
    """tarfile.data_filter's rules where tarfile lacks it, applied to member in place: no device or fifo, no
    absolute name or link, nothing that lands or points outside dest (through links already extracted too),
    no setuid/setgid/sticky or group/other write bits, owned by us. Checked just before each extraction."""
    if member.isdev() or member.isfifo() or os.path.isabs(member.name):
        return False
    target = os.path.realpath(os.path.join(dest, member.name))
    if os.path.commonpath([target, dest]) != dest:
        return False
    if member.islnk() or member.issym():
        if os.path.isabs(member.linkname):
            return False
        base = os.path.dirname(target) if member.issym() else dest
        if os.path.commonpath([os.path.realpath(os.path.join(base, member.linkname)), dest]) != dest:
            return False
    member.mode &= 0o755
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return True


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


if pytest is not None:
    @pytest.fixture
    def pyoci_run(tmp_path: Path) -> Iterator[Callable[..., Result]]:
        """pyoci.testing.run with its files under the test's tmp_path."""
        def runner(image: str | os.PathLike[str], args: list[str], **kw: Any) -> Result:
            kw.setdefault("workdir", tmp_path)
            return run(image, args, **kw)

        yield runner
