"""tests/v2 runs only inside the user-mode-Linux guest of tests/guest (a pure cgroup v2 kernel).

Elsewhere (``make test`` on the hybrid build host) every test here is skipped with a pointer to the runner.
Inside the guest (its init exports PYOCI_IN_GUEST=1) the host must really be pure v2: one cgroup2 hierarchy at
/sys/fs/cgroup and no v1 hierarchy; anything else is a broken guest and fails the session instead of skipping.
The fixtures (``rt``, ``bundle``, ``rootfs``) and the leak check come from tests/conftest.py.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
CGROUP2 = Path("/sys/fs/cgroup")


def in_guest() -> bool:
    return os.environ.get("PYOCI_IN_GUEST") == "1"


def cgroup_mounts() -> list[tuple[str, str]]:
    """(fstype, mount point) of every cgroup mount we see."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0]
            if fstype in ("cgroup", "cgroup2"):
                out.append((fstype, left.split()[4]))
    return out


def pytest_configure(config: pytest.Config) -> None:
    if not in_guest():
        return
    mounts = cgroup_mounts()
    if mounts != [("cgroup2", str(CGROUP2))] or not (CGROUP2 / "cgroup.controllers").exists():
        raise pytest.UsageError("PYOCI_IN_GUEST=1 but this is not a pure cgroup v2 host: cgroup mounts %r" % mounts)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_guest():
        return
    skip = pytest.mark.skip(reason="needs the pure cgroup v2 guest: run tests/guest/run-v2")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture
def parent() -> Iterator[str]:
    """A cgroup parent name unique to the test, below which its containers' cgroupsPath go (so nothing here can
    touch another cgroup); pyoci creates it and must remove it; removed here if a failed test left it."""
    name = "pyoci-v2-%s" % uuid.uuid4().hex[:10]
    yield name
    d = CGROUP2 / name
    if d.exists():
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(str(p)), reverse=True):
            os.rmdir(sub)
        os.rmdir(d)
