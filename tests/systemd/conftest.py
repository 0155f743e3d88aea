"""tests/systemd runs only in the guest booted with systemd as PID 1 (`tests/guest/run-v2 --systemd`).

Elsewhere every test here is skipped with a pointer to the runner. Inside (PYOCI_IN_GUEST=1 and
PYOCI_GUEST_SYSTEMD=1) the host must be what the tests are about: systemd as PID 1 (/run/systemd/system) on a
pure cgroup v2 hierarchy; anything else fails the session instead of skipping. The fixtures (``rt``,
``bundle``, ``rootfs``) and the leak check come from tests/conftest.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def in_systemd_guest() -> bool:
    return os.environ.get("PYOCI_IN_GUEST") == "1" and os.environ.get("PYOCI_GUEST_SYSTEMD") == "1"


def pytest_configure(config: pytest.Config) -> None:
    if not in_systemd_guest():
        return
    if not os.path.isdir("/run/systemd/system"):
        raise pytest.UsageError("PYOCI_GUEST_SYSTEMD=1 but systemd is not PID 1 here")
    with open("/proc/self/mountinfo") as f:
        cgroups = [(line.partition(" - ")[2].split()[0], line.split()[4]) for line in f
                   if line.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")]
    if cgroups != [("cgroup2", "/sys/fs/cgroup")]:
        raise pytest.UsageError("the systemd guest is not pure cgroup v2: cgroup mounts %r" % cgroups)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_systemd_guest():
        return
    skip = pytest.mark.skip(reason="needs the guest with systemd as PID 1: run tests/guest/run-v2 --systemd")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
