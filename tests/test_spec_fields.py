"""Every field of runtime-spec 1.3.0's config.json (Linux and the platform-neutral part) is either applied,
proven by a named test elsewhere, or refused (or, where runc ignores it, warned about) with a message naming
it: nothing is accepted and dropped. FIELDS lists them, as the spec's schema (schema/config-schema.json and
what it refers to, at tag v1.3.0) spells the paths; a field the spec adds must be added here."""
from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import pytest

from conftest import Bundle, Runtime

TESTS = Path(__file__).resolve().parent

# path -> "test_file.py::test_name" (applied and proven there), or ("refused" | "warned", a value to set)
FIELDS: dict[str, Any] = {
    "ociVersion": "test_runc_parity.py::test_hooks_cwd_and_environment",
    "annotations": "test_hooks.py::test_hooks_get_the_state_on_stdin",
    "hostname": "test_namespaces.py::test_uts_hostname_and_domainname",
    "domainname": "test_namespaces.py::test_uts_hostname_and_domainname",
    "root.path": "test_rootfs.py::test_root_path_relative_to_bundle",
    "root.readonly": "test_rootfs.py::test_root_readonly",
    "mounts[].destination": "test_rootfs.py::test_mounts_happen_in_order",
    "mounts[].source": "test_rootfs.py::test_bind_source_relative_to_bundle",
    "mounts[].type": "test_rootfs.py::test_default_mount_types",
    "mounts[].options": "test_rootfs.py::test_mount_options_ro_nosuid_nodev_noexec",
    "mounts[].uidMappings": "test_runc_parity.py::test_idmap_mount_with_its_own_mappings",
    "mounts[].gidMappings": "test_runc_parity.py::test_idmap_mount_with_its_own_mappings",
    "process.terminal": "test_console.py::test_console_socket_receives_the_pty_master",
    "process.consoleSize": "test_console.py::test_console_socket_receives_the_pty_master",
    "process.cwd": "test_process.py::test_cwd",
    "process.env": "test_process.py::test_env_is_exactly_process_env",
    "process.args": "test_process.py::test_args_resolved_in_the_containers_path",
    "process.commandLine": "windows",  # config.md: Windows only
    "process.user.uid": "test_process.py::test_user_uid_gid_additional_gids",
    "process.user.gid": "test_process.py::test_user_uid_gid_additional_gids",
    "process.user.additionalGids": "test_process.py::test_user_uid_gid_additional_gids",
    "process.user.umask": "test_process.py::test_umask",
    "process.user.username": "windows",  # config.md: Windows only
    "process.rlimits": "test_process.py::test_rlimits",
    "process.capabilities": "test_process.py::test_capabilities_all_five_sets_non_root",
    "process.noNewPrivileges": "test_process.py::test_no_new_privileges",
    "process.oomScoreAdj": "test_process.py::test_oom_score_adj",
    "process.scheduler": "test_scheduling.py::test_scheduler_batch_with_nice",
    "process.ioPriority": "test_scheduling.py::test_io_priority_of_the_container_process",
    "process.execCPUAffinity": "test_placement.py::test_exec_cpu_affinity_initial_and_final",
    "process.apparmorProfile": ("refused", "some-profile"),
    "process.selinuxLabel": ("refused", "system_u:system_r:container_t:s0"),
    "hooks.prestart": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.createRuntime": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.createContainer": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.startContainer": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.poststart": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.poststop": "test_hooks.py::test_hooks_run_in_order_at_their_moment",
    "hooks.*[].args": "test_hooks.py::test_hook_args_and_env",
    "hooks.*[].env": "test_hooks.py::test_hook_args_and_env",
    "hooks.*[].timeout": "test_hooks.py::test_hook_timeout",
    "linux.namespaces[].type": "test_namespaces.py::test_namespace_is_new_only_when_asked",
    "linux.namespaces[].path": "test_namespaces.py::test_join_network_namespace_by_path",
    "linux.uidMappings": "test_namespaces.py::test_user_namespace_maps_ids",
    "linux.gidMappings": "test_namespaces.py::test_user_namespace_maps_ids",
    "linux.timeOffsets": "test_namespaces.py::test_time_namespace_offsets",
    "linux.devices": "test_rootfs.py::test_extra_devices",
    "linux.netDevices": "test_netdevices.py::test_a_device_moves_renamed_with_its_addresses_and_up",
    "linux.cgroupsPath": "test_cgroups.py::test_the_init_is_born_in_its_cgroup_on_pure_v2",
    "linux.rootfsPropagation": "test_rootfs.py::test_rootfs_propagation_values_work",
    "linux.maskedPaths": "test_rootfs.py::test_masked_and_readonly_paths_custom",
    "linux.readonlyPaths": "test_rootfs.py::test_masked_and_readonly_paths_custom",
    "linux.mountLabel": ("refused", "system_u:object_r:container_file_t:s0"),
    "linux.sysctl": "test_rootfs.py::test_sysctl",
    "linux.personality.domain": "test_spec_fields.py::test_personality_is_applied",
    "linux.personality.flags": ("refused", {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}),
    "linux.memoryPolicy": "test_placement.py::test_memory_policy_of_the_init_and_of_exec",
    "linux.intelRdt": ("refused", {"closID": "guaranteed"}),
    "linux.seccomp.defaultAction": "test_seccomp_container.py::test_filter_applies_to_the_container_and_to_exec",
    "linux.seccomp.defaultErrnoRet": "test_seccomp.py::test_check_accepts_everything_valid",
    "linux.seccomp.architectures": "test_features.py::test_every_namespace_capability_and_seccomp_name_is_accepted",
    "linux.seccomp.flags": "test_features.py::test_every_namespace_capability_and_seccomp_name_is_accepted",
    "linux.seccomp.listenerPath": "test_seccomp_notify.py::test_run_sends_the_state_and_the_fd_and_the_agent_answers",
    "linux.seccomp.listenerMetadata": "test_seccomp_notify.py::test_run_sends_the_state_and_the_fd_and_the_agent_answers",
    "linux.seccomp.syscalls": "test_seccomp_container.py::test_filter_applies_to_the_container_and_to_exec",
    "linux.resources.devices": "test_cgroup_resources.py::test_devices_deny_all_then_rules_then_defaults",
    "linux.resources.memory.limit": "test_cgroup_resources.py::test_memory_limit_oom_kills_a_process_above_it",
    "linux.resources.memory.reservation": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.memory.swap": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.memory.swappiness": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.memory.kernel": "test_cgroups.py::test_kernel_memory_limits_are_ignored_with_a_warning",
    "linux.resources.memory.kernelTCP": "test_cgroups.py::test_kernel_memory_limits_are_ignored_with_a_warning",
    "linux.resources.memory.disableOOMKiller": "test_cgroup_translate.py::test_v1_only_memory_knobs_are_ignored_with_a_warning",
    "linux.resources.memory.useHierarchy": "test_cgroup_translate.py::test_v1_only_memory_knobs_are_ignored_with_a_warning",
    "linux.resources.memory.checkBeforeUpdate": "test_cgroup_resources.py::test_memory_limit_below_usage",
    "linux.resources.cpu.shares": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.cpu.quota": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.cpu.burst": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.cpu.period": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.cpu.realtimeRuntime": "test_cgroup_resources.py::test_realtime_bandwidth",
    "linux.resources.cpu.realtimePeriod": "test_cgroup_resources.py::test_realtime_bandwidth",
    "linux.resources.cpu.cpus": "test_cgroup_resources.py::test_cpuset_pins_the_process",
    "linux.resources.cpu.mems": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.cpu.idle": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.pids.limit": "test_cgroup_resources.py::test_pids_limit_makes_the_sixth_task_fail",
    "linux.resources.blockIO.weight": "test_cgroup_resources.py::test_block_io_weight_without_a_weight_file",
    "linux.resources.blockIO.leafWeight": "test_cgroup_translate.py::test_io_weight_with_bfq",
    "linux.resources.blockIO.weightDevice": "test_cgroup_translate.py::test_io_weight_with_bfq",
    "linux.resources.blockIO.throttleReadBpsDevice": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.blockIO.throttleWriteBpsDevice": "v2/test_v2_resources.py::test_block_io_throttles_on_a_real_device_and_weight",
    "linux.resources.blockIO.throttleReadIOPSDevice": "v2/test_v2_resources.py::test_block_io_throttles_on_a_real_device_and_weight",
    "linux.resources.blockIO.throttleWriteIOPSDevice": "test_cgroup_resources.py::test_writes_every_v1_file",
    "linux.resources.hugepageLimits": "test_cgroup_resources.py::test_hugetlb_where_the_controller_is",
    "linux.resources.network.classID": "test_cgroup_resources.py::test_controller_missing_on_this_host_is_refused_before_any_write",
    "linux.resources.network.priorities": "test_cgroup_resources.py::test_controller_missing_on_this_host_is_refused_before_any_write",
    "linux.resources.rdma": "test_cgroup_resources.py::test_controller_missing_on_this_host_is_refused_before_any_write",
    "linux.resources.unified": "test_cgroup_resources.py::test_unified_files_on_the_v2_hierarchy",
}

# the spec's leaf paths (generated once from schema/ at v1.3.0; containers whose every leaf is listed above are
# covered by their parent's entry where FIELDS names the parent)
SPEC_PATHS = """
annotations domainname hostname ociVersion root.path root.readonly
mounts[].destination mounts[].source mounts[].type mounts[].options mounts[].uidMappings mounts[].gidMappings
process.terminal process.consoleSize process.cwd process.env process.args process.commandLine process.user.uid
process.user.gid process.user.additionalGids process.user.umask process.user.username process.rlimits
process.capabilities process.noNewPrivileges process.oomScoreAdj process.scheduler process.ioPriority
process.execCPUAffinity process.apparmorProfile process.selinuxLabel
hooks.prestart hooks.createRuntime hooks.createContainer hooks.startContainer hooks.poststart hooks.poststop
hooks.*[].args hooks.*[].env hooks.*[].timeout
linux.namespaces[].type linux.namespaces[].path linux.uidMappings linux.gidMappings linux.timeOffsets
linux.devices linux.netDevices linux.cgroupsPath linux.rootfsPropagation linux.maskedPaths linux.readonlyPaths
linux.mountLabel linux.sysctl linux.personality.domain linux.personality.flags linux.memoryPolicy linux.intelRdt
linux.seccomp.defaultAction linux.seccomp.defaultErrnoRet linux.seccomp.architectures linux.seccomp.flags
linux.seccomp.listenerPath linux.seccomp.listenerMetadata linux.seccomp.syscalls
linux.resources.devices linux.resources.memory.limit linux.resources.memory.reservation linux.resources.memory.swap
linux.resources.memory.swappiness linux.resources.memory.kernel linux.resources.memory.kernelTCP
linux.resources.memory.disableOOMKiller linux.resources.memory.useHierarchy linux.resources.memory.checkBeforeUpdate
linux.resources.cpu.shares linux.resources.cpu.quota linux.resources.cpu.burst linux.resources.cpu.period
linux.resources.cpu.realtimeRuntime linux.resources.cpu.realtimePeriod linux.resources.cpu.cpus
linux.resources.cpu.mems linux.resources.cpu.idle linux.resources.pids.limit linux.resources.blockIO.weight
linux.resources.blockIO.leafWeight linux.resources.blockIO.weightDevice linux.resources.blockIO.throttleReadBpsDevice
linux.resources.blockIO.throttleWriteBpsDevice linux.resources.blockIO.throttleReadIOPSDevice
linux.resources.blockIO.throttleWriteIOPSDevice linux.resources.hugepageLimits linux.resources.network.classID
linux.resources.network.priorities linux.resources.rdma linux.resources.unified
""".split()


def test_the_table_covers_the_spec() -> None:
    assert sorted(FIELDS) == sorted(SPEC_PATHS)


@pytest.mark.parametrize("path", sorted(p for p, w in FIELDS.items() if isinstance(w, str) and "::" in w))
def test_an_applied_field_names_a_test_that_exists(path: str) -> None:
    file, _, name = FIELDS[path].partition("::")
    tree = ast.parse((TESTS / file).read_text())
    assert name in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}, FIELDS[path]


def _set(config: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        config = config.setdefault(k, {})
    config[keys[-1]] = value


@pytest.mark.parametrize("path", sorted(p for p, w in FIELDS.items() if isinstance(w, tuple)))
def test_a_refused_field_is_an_error_naming_it(rt: Runtime, bundle: Bundle, path: str) -> None:
    kind, value = FIELDS[path]
    assert kind == "refused"
    target = path.rsplit(".", 1)[0] if path.endswith(".flags") else path  # personality: the object holds flags
    _set(bundle.config, target, copy.deepcopy(value))
    err = rt.refuse(bundle)
    assert err.startswith("pyoci: " + path), err
    out = rt.cmd("validate", "--bundle", bundle.path)  # valid per the spec, or not, but never silent
    assert path in out.stdout, out.stdout


def test_personality_is_applied(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["personality"] = {"domain": "LINUX32"}
    assert rt.sh(bundle, "uname -m").strip() in ("i686", "i386", "armv7l", "armv8l")
