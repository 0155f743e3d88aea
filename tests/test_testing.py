"""pyoci.testing: the README's example runs as written (pytest in a subprocess, from the checkout), and run()
takes a tarball too, merges the config and leaves nothing behind, even when the config is refused."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import mounts_mentioning

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"


def test_the_readme_example_runs(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- pyoci.testing example -->\n```python\n(.*?)```", text, re.S)
    assert block, "the README's pyoci.testing example is missing"
    (tmp_path / "test_example.py").write_text(block.group(1))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=180)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


def test_a_tarball_and_cleanup(tmp_path: Path) -> None:
    import pyoci.testing

    tarball = tmp_path / "image.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(ROOTFS, arcname=".")
    work = tmp_path / "work"
    work.mkdir()
    r = pyoci.testing.run(tarball, ["cat", "/etc/hostname-test"], workdir=work,
                          config={"mounts": [{"destination": "/etc/hostname-test", "type": "bind",
                                              "source": str(tmp_path / "h"), "options": ["rbind", "ro"]}]})
    assert r.exit_code != 0  # no such source: refused, one line
    assert "bind source" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    (tmp_path / "h").write_text("from-a-bind\n")
    r = pyoci.testing.run(tarball, ["sh", "-c", "cat /etc/hostname-test; id -u"], workdir=work,
                          config={"process": {"user": {"uid": 1000, "gid": 1000}},
                                  "mounts": [{"destination": "/etc/hostname-test", "type": "bind",
                                              "source": str(tmp_path / "h"), "options": ["rbind", "ro"]}]})
    assert (r.exit_code, r.stdout) == (0, "from-a-bind\n1000\n"), r.stderr
    assert os.listdir(work) == [] and not mounts_mentioning(work)


def test_a_hostile_tarball_stays_inside_its_rootfs(tmp_path: Path) -> None:
    """What tarfile's data filter refuses is left out, on interpreters with the filter and without it (Debian
    12's 3.11.2, where pyoci.testing applies the same rules itself): names outside the rootfs, absolute and
    escaping links and anything written through them, device nodes; setuid and group/other write bits go."""
    import io

    import pyoci.testing

    tarball = tmp_path / "evil.tar"
    outside = tmp_path / "outside"
    outside.mkdir()

    def add(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "",
            data: bytes = b"x\n") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.linkname = kind, mode, link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    with tarfile.open(tarball, "w") as tar:
        tar.add(ROOTFS, arcname=".")
        add(tar, "../outside/dotdot")
        add(tar, "/abs-name")
        add(tar, "abs-link", tarfile.SYMTYPE, link=str(outside))
        add(tar, "abs-link/through-abs")
        add(tar, "up", tarfile.SYMTYPE, link="../outside")
        add(tar, "up/through-up")
        add(tar, "hard", tarfile.LNKTYPE, link="../outside/dotdot")
        add(tar, "dev-null", tarfile.CHRTYPE, mode=0o666)
        add(tar, "suid", mode=0o6777)
        add(tar, "inside-link", tarfile.SYMTYPE, link="bin")
    work = tmp_path / "work"
    work.mkdir()
    # the refused links' names may exist as directories: the files "through" them land inside the rootfs
    r = pyoci.testing.run(tarball, ["sh", "-c", "for p in /abs-link /up /hard; do [ -L $p ] && echo link:$p; done; "
                                    "ls -d /hard /dev-null 2>/dev/null; stat -c %a /suid; readlink /inside-link"],
                          workdir=work)
    assert (r.exit_code, r.stdout) == (0, "755\nbin\n"), r.stdout + r.stderr
    assert os.listdir(outside) == [] and os.listdir(work) == []
