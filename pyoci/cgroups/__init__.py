"""The container's cgroup on every mounted hierarchy, v1 and v2 behind one interface.

- core: the hierarchies of this host and the ``Cgroup`` interface (create, add, pids, freeze, kill, destroy)
- resources: linux.resources checked, located and applied (``Cgroup.apply``), shared by both versions
- v1, v2: the version-specific translations (runc's and crun's), v2's controller enabling
- devices: the device rules, for the v1 controller or as an eBPF program on v2
"""
from pyoci.cgroups.core import Cgroup, Hierarchy, hierarchies, process_cgroups, start_migration_wait

__all__ = ["Cgroup", "Hierarchy", "hierarchies", "process_cgroups", "start_migration_wait"]
