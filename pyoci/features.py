"""`pyoci features`: what this runtime implements, as runtime-spec features.md / features-linux.md define it
(containerd and the kubelet read it to decide what to ask for). Every list is what create accepts, taken from
the tables the code uses; tests/test_features.py runs a container with each entry.

`--host` (beyond runc) narrows it to what will work on this host: the namespaces the kernel has, the cgroup
versions mounted and a systemd manager running, the capabilities the kernel knows, the seccomp flags the
kernel takes, the seccomp architectures a filter here can hold, id-mapped mounts where mount_setattr exists.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION_MIN = "1.0.0"


def mount_options() -> list[str]:
    """Every option word the mount code takes (filesystem data such as mode= or size= aside)."""
    from pyoci.rootfs import option_words

    return sorted(option_words())


def document(host: bool = False) -> dict[str, Any]:
    from pyoci import __version__, process, seccomp, validate
    from pyoci.spec import HOOK_KINDS
    from pyoci.state import OCI_VERSION

    namespaces = list(validate.NAMESPACE_TYPES)
    capabilities = list(process.CAPABILITIES)
    flags = sorted(seccomp.applied_flags())
    archs = sorted(a for a in validate.SECCOMP_ARCHES if seccomp.arch_known(a))
    cgroup = {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True}
    idmap = True
    if host:
        namespaces = [n for n in namespaces if os.path.exists("/proc/self/ns/" + _PROC_NS.get(n, n))]
        last = _read_int("/proc/sys/kernel/cap_last_cap")
        if last is not None:
            capabilities = capabilities[:last + 1]
        flags = [f for f in flags if seccomp.kernel_takes(f)]
        archs = [a for a in archs if seccomp.arch_usable(a)]
        from pyoci.cgroups import hierarchies

        mounted = hierarchies()
        versions = {h.version for h in mounted}
        cgroup = {"v1": 1 in versions, "v2": 2 in versions, "systemd": os.path.isdir("/run/systemd/system"),
                  "systemdUser": False, "rdma": any("rdma" in h.controllers for h in mounted)
                  or "rdma" in _v2_controllers()}
        idmap = _kernel_at_least(5, 12)  # mount_setattr(MOUNT_ATTR_IDMAP)
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": namespaces,
            "capabilities": capabilities,
            "cgroup": cgroup,
            "seccomp": {
                "enabled": True,
                "actions": sorted(validate.SECCOMP_ACTIONS),
                "operators": sorted(validate.SECCOMP_OPS),
                "archs": archs,
                "knownFlags": sorted(validate.SECCOMP_FLAGS),
                "supportedFlags": flags,
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},  # resctrl groups are not managed by pyoci yet
            "memoryPolicy": {"modes": sorted(process.MPOL_MODES), "flags": sorted(process.MPOL_FLAGS)},
            "mountExtensions": {"idmap": {"enabled": idmap}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": seccomp.library_version(),
            "org.pyoci.version": __version__,
        },
        "potentiallyUnsafeConfigAnnotations": ["org.systemd.property."],  # they change the container's unit
    }


_PROC_NS = {"network": "net", "mount": "mnt"}


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _v2_controllers() -> list[str]:
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return f.read().split()
    except OSError:
        return []


def _kernel_at_least(major: int, minor: int) -> bool:
    parts = os.uname().release.split("-")[0].split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False

