"""The base root filesystem every case bundle is copied from: busybox + /probe."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .probe import PROBE_SH

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "bundles" / "busybox" / "build-rootfs.sh"
MARKER = "conformance-rootfs-marker"


class RootfsError(Exception):
    pass


def build_base_rootfs(dest: Path, source: Path | None = None) -> Path:
    """Create the base rootfs at ``dest``: a copy of ``source`` (a busybox rootfs) or one built
    with bundles/busybox/build-rootfs.sh, plus /probe and a marker file."""
    if source is not None:
        if not (source / "bin" / "sh").exists() and not (source / "bin" / "sh").is_symlink():
            raise RootfsError(f"{source} does not look like a busybox rootfs (no bin/sh)")
        shutil.copytree(source, dest, symlinks=True)
    else:
        if not BUILD_SCRIPT.exists():
            raise RootfsError(f"{BUILD_SCRIPT} not found; pass --rootfs DIR")
        r = subprocess.run(["sh", str(BUILD_SCRIPT), str(dest)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RootfsError(f"building the busybox rootfs failed: {r.stderr.strip() or r.stdout.strip()}")
    for d in ("proc", "sys", "dev", "tmp", "etc", "home", "mnt", "opt"):
        (dest / d).mkdir(exist_ok=True)
    os.chmod(dest, 0o755)
    os.chmod(dest / "tmp", 0o1777)
    probe = dest / "probe"
    shutil.copyfile(PROBE_SH, probe)
    os.chmod(probe, 0o755)
    (dest / "marker").write_text(MARKER + "\n")
    return dest
