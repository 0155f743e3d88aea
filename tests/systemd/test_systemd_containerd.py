"""containerd configured as the README says for a systemd host: the ``ctr run systemd`` snippet
(--runc-systemd-cgroup, --cgroup system.slice:ctr:demo) and the CRI handler of ``containerd config.toml systemd``
(SystemdCgroup = true), with runc (the oracle) and pyoci, on the guest with systemd as PID 1.

The scenarios of tests/v2/test_containerd.py, where SYSTEMD picks those snippets: the container's cgroup is the
scope its cgroup path names (ctr-demo.scope; cri-containerd-ID.scope in system.slice, the pod's parent, with
the memory limit as MemoryMax), the runtime is called with --systemd-cgroup, and no unit is left afterwards.
"""
from v2.test_containerd import *  # noqa: F401,F403 - the same scenarios, collected here
