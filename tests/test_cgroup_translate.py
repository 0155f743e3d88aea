"""Cgroup.apply's translation, against a fake cgroupfs in a temp dir (no pure cgroup v2 host is at hand).

The fake is a tree of plain files laid out as the kernel lays out cgroupfs: ``root`` (the v2 mount, with
cgroup.controllers and cgroup.subtree_control), ``root/pod`` (an existing parent cgroup, not ours) and
``root/pod/ctr`` (the container's cgroup) with the controller files. Every write is recorded in order, so
multi-line files (io.max) and runc's orderings can be checked; the real writes of the same v1 code paths
are covered on the real host by test_cgroup_resources.py.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import pytest

from pyoci.cgroups import core, devices
from pyoci.cgroups import Cgroup
from pyoci.cgroups.v2 import cpu_weight_from_shares, io_weight_from_blkio, swap_for_v2
from pyoci.errors import ConfigError, ContainerError

ALL_V2 = "cpuset cpu io memory hugetlb pids rdma misc"
CTR_FILES = {
    "cgroup.procs": "", "cgroup.max.depth": "max", "cgroup.max.descendants": "max", "cgroup.subtree_control": "",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
    "cpuset.cpus": "", "cpuset.mems": "",
    "memory.max": "max", "memory.low": "0", "memory.high": "max", "memory.swap.max": "max", "memory.current": "0",
    "pids.max": "max", "io.max": "", "io.weight": "default 100",
    "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "hugetlb.1GB.max": "max", "hugetlb.1GB.rsvd.max": "max",
    "rdma.max": "",
}


class Fake:
    """A fake v2 mount with an existing parent cgroup and the container's cgroup; records every write."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, available: str = ALL_V2,
                 parent_enabled: str = "", root_enabled: str = "") -> None:
        self.root = tmp / "v2"
        self.parent = self.root / "pod"
        self.ctr = self.parent / "ctr"
        self.ctr.mkdir(parents=True)
        for d, enabled in ((self.root, root_enabled), (self.parent, parent_enabled)):
            (d / "cgroup.controllers").write_text(available + "\n")
            (d / "cgroup.subtree_control").write_text(enabled + "\n")
        (self.ctr / "cgroup.controllers").write_text(parent_enabled + "\n")
        for name, value in CTR_FILES.items():
            (self.ctr / name).write_text(value + "\n")
        self.writes: list[tuple[str, str]] = []
        real = core.write_value

        def record(path: str, value: str) -> None:
            p = Path(path)
            self.writes.append((str(p.relative_to(self.root)) if p.is_relative_to(self.root) else path, value))
            real(path, value)

        monkeypatch.setattr(core, "write_value", record)
        self.programs: list[tuple[str, bytes]] = []  # a fake directory takes no eBPF program: recorded only
        monkeypatch.setattr(devices, "attach", lambda d, insns: self.programs.append((d, insns)))

    def cgroup(self, **v1_dirs: Path) -> Cgroup:
        paths = {name: str(p) for name, p in v1_dirs.items()}
        paths[""] = str(self.ctr)
        return Cgroup(paths, created=[str(self.ctr)], roots={"": str(self.root)})

    def file(self, name: str) -> str:
        return (self.ctr / name).read_text().strip()

    def wrote(self, name: str) -> list[str]:
        """Values written to the container's file name, in order."""
        return [v for p, v in self.writes if p == "pod/ctr/" + name]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


FULL: dict[str, Any] = {
    "devices": [{"allow": False, "access": "rwm"}],
    "memory": {"limit": 512 << 20, "reservation": 256 << 20, "swap": 768 << 20, "kernel": -1, "kernelTCP": -1},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 10000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 100},
    "blockIO": {"weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576},
                                          {"major": 8, "minor": 16, "rate": 0}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 50}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0}],
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "unified": {"memory.high": "400000000", "io.max": "259:0 rbps=2097152 wiops=120\n253:0 rbps=2097152 wiops=120"},
}


# ---------------------------------------------------------------------------------------- the translation
def test_full_translation(fake: Fake) -> None:
    fake.cgroup().apply(FULL)
    assert fake.file("cpu.weight") == "39"  # 1 + (1024-2)*9999/262142
    assert fake.file("cpu.max") == "50000 100000"
    assert fake.file("cpu.max.burst") == "10000"
    assert fake.file("cpuset.cpus") == "0-1" and fake.file("cpuset.mems") == "0"
    assert fake.file("memory.max") == str(512 << 20)
    assert fake.file("memory.swap.max") == str(256 << 20)  # OCI swap is memory+swap
    assert fake.file("memory.low") == str(256 << 20)
    assert fake.file("memory.high") == "400000000"  # unified, as-is
    assert fake.file("pids.max") == "100"
    assert fake.file("io.weight") == str(1 + (500 - 10) * 9999 // 990)  # no io.bfq.weight: converted
    assert fake.wrote("io.max") == ["8:0 rbps=1048576", "8:0 wbps=2097152", "8:0 riops=100", "8:16 wiops=50",
                                    "259:0 rbps=2097152 wiops=120", "253:0 rbps=2097152 wiops=120"]
    assert fake.wrote("hugetlb.2MB.max") == ["209715200"] and fake.wrote("hugetlb.2MB.rsvd.max") == ["209715200"]
    assert fake.wrote("hugetlb.1GB.max") == ["0"] and fake.wrote("hugetlb.1GB.rsvd.max") == ["0"]
    assert fake.wrote("rdma.max") == ["mlx5_1 hca_handle=3 hca_object=10000"]
    # controllers enabled top-down, once each, before any controller file is written
    enable = [(p, v) for p, v in fake.writes if p.endswith("subtree_control")]
    assert [p for p, _ in enable] == ["cgroup.subtree_control", "pod/cgroup.subtree_control"]
    for _p, v in enable:
        assert sorted(v.split()) == ["+cpu", "+cpuset", "+hugetlb", "+io", "+memory", "+pids", "+rdma"]
    assert fake.writes[:2] == enable
    # the container's own subtree_control is left alone (processes live in it)
    assert fake.file("cgroup.subtree_control") == ""
    # unified is written last, so it overrides the typed fields
    assert fake.writes[-1] == ("pod/ctr/io.max", "253:0 rbps=2097152 wiops=120")
    # the device rules become one eBPF program for the container's cgroup (run for real in test_devices.py)
    assert fake.programs == [(str(fake.ctr), devices.program(devices.parse(FULL["devices"])))]


def test_only_missing_controllers_are_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(tmp_path, monkeypatch, root_enabled="cpu memory pids", parent_enabled="cpu memory")
    fake.cgroup().apply({"pids": {"limit": 10}, "memory": {"limit": 1 << 30}})
    assert [w for w in fake.writes if w[0].endswith("subtree_control")] == [("pod/cgroup.subtree_control", "+pids")]
    assert fake.file("pids.max") == "10" and fake.file("memory.max") == str(1 << 30)


def test_nothing_needed_touches_no_subtree_control(fake: Fake) -> None:
    fake.cgroup().apply({"unified": {"cgroup.max.depth": "4"}, "devices": []})
    assert fake.writes == [("pod/ctr/cgroup.max.depth", "4")]


@pytest.mark.parametrize("cpu, expected", [
    ({"quota": 20000}, "20000 100000"),
    ({"quota": -1, "period": 50000}, "max 50000"),
    ({"period": 250000}, "max 250000"),
    ({"quota": 30000, "period": 60000}, "30000 60000"),
])
def test_cpu_max(fake: Fake, cpu: dict, expected: str) -> None:
    fake.cgroup().apply({"cpu": cpu})
    assert fake.wrote("cpu.max") == [expected]


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 39), (262144, 10000), (1, 1), (10 ** 6, 10000)])
def test_cpu_weight_conversion(shares: int, weight: int) -> None:
    assert cpu_weight_from_shares(shares) == weight


def test_idle_cgroup_gets_no_weight(fake: Fake) -> None:
    fake.cgroup().apply({"cpu": {"shares": 512, "idle": 1}})
    assert fake.wrote("cpu.idle") == ["1"] and fake.wrote("cpu.weight") == []
    fake.writes.clear()
    fake.cgroup().apply({"cpu": {"shares": 512, "idle": 0}})
    assert fake.wrote("cpu.idle") == ["0"] and fake.wrote("cpu.weight") == [str(cpu_weight_from_shares(512))]


def test_burst_refused_before_the_quota_is_retried_after_it(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    write = core.write_value
    refused = []

    def einval_once(path: str, value: str) -> None:
        if path.endswith("cpu.max.burst") and not refused:
            refused.append(value)
            raise OSError(errno.EINVAL, "Invalid argument")
        write(path, value)

    monkeypatch.setattr(core, "write_value", einval_once)
    fake.cgroup().apply({"cpu": {"quota": 40000, "burst": 40000}})
    assert refused == ["40000"]
    assert [p for p, _ in fake.writes if "cpu." in p] == ["pod/ctr/cpu.max", "pod/ctr/cpu.max.burst"]
    assert fake.file("cpu.max.burst") == "40000"


def test_realtime_is_refused_on_v2(fake: Fake) -> None:
    with pytest.raises(ContainerError, match=r"^linux\.resources\.cpu\.realtimeRuntime: real-time group "
                                             r"scheduling is not supported on cgroup v2$"):
        fake.cgroup().apply({"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 100000}})
    assert fake.writes == []


# ------------------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("memory, files", [
    ({"limit": 100 << 20, "swap": 100 << 20}, {"memory.max": str(100 << 20), "memory.swap.max": "0"}),
    ({"limit": 100 << 20, "swap": -1}, {"memory.max": str(100 << 20), "memory.swap.max": "max"}),
    ({"limit": -1}, {"memory.max": "max", "memory.swap.max": "max"}),
    ({"limit": 100 << 20}, {"memory.max": str(100 << 20)}),
    ({"reservation": 50 << 20}, {"memory.low": str(50 << 20)}),
    ({"reservation": -1}, {"memory.low": "max"}),
])
def test_memory_v2(fake: Fake, memory: dict, files: dict) -> None:
    fake.cgroup().apply({"memory": memory})
    assert {p.split("/")[-1]: v for p, v in fake.writes if "/memory." in p} == files
    if "memory.swap.max" in files:  # swap before max, as runc
        names = [p for p, _ in fake.writes]
        assert names.index("pod/ctr/memory.swap.max") < names.index("pod/ctr/memory.max")


def test_no_swap_accounting_is_fine_for_max_and_zero(fake: Fake) -> None:
    (fake.ctr / "memory.swap.max").unlink()
    fake.cgroup().apply({"memory": {"limit": 100 << 20, "swap": 100 << 20}})
    assert fake.file("memory.max") == str(100 << 20)
    with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.swap: cannot write memory\.swap\.max="
                                             r"104857600: No such file or directory$"):
        fake.cgroup().apply({"memory": {"limit": 100 << 20, "swap": 200 << 20}})


@pytest.mark.parametrize("swap, limit, message", [
    (200, 0, "a swap limit needs a memory limit"),
    (100, 200, "memory+swap limit 100 is below the memory limit 200"),
])
def test_swap_conversion_errors(fake: Fake, swap: int, limit: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        swap_for_v2(swap, limit)
    with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.swap: " + re.escape(message)):
        fake.cgroup().apply({"memory": {"swap": swap, "limit": limit}})
    assert fake.writes == []


def test_check_before_update(fake: Fake) -> None:
    (fake.ctr / "memory.current").write_text("300000000\n")
    with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.limit: memory limit 200000000 is not "
                                             r"above the current usage 300000000 \(checkBeforeUpdate\)$"):
        fake.cgroup().apply({"memory": {"limit": 200000000, "checkBeforeUpdate": True}})
    assert fake.file("memory.max") == "max"
    fake.cgroup().apply({"memory": {"limit": 200000000}})  # without the check, v2 takes it (and reclaims/OOMs)
    assert fake.file("memory.max") == "200000000"


def test_v1_only_memory_knobs_are_ignored_with_a_warning(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.cgroup().apply({"memory": {"swappiness": 0, "disableOOMKiller": True, "useHierarchy": False}})
    assert fake.writes == []
    err = capsys.readouterr().err
    for key in ("swappiness", "disableOOMKiller", "useHierarchy"):
        assert "linux.resources.memory.%s: " % key in err


# ------------------------------------------------------------------------------------------- pids, io
@pytest.mark.parametrize("limit, expected", [(-1, "max"), (-5, "max"), (0, "0"), (1, "1"), (32771, "32771")])
def test_pids(fake: Fake, limit: int, expected: str) -> None:
    fake.cgroup().apply({"pids": {"limit": limit}})
    assert fake.wrote("pids.max") == [expected]


def test_io_weight_with_bfq(fake: Fake) -> None:
    (fake.ctr / "io.bfq.weight").write_text("default 100\n")  # per-device BFQ weights (5.4+)
    fake.cgroup().apply({"blockIO": {"weight": 300, "leafWeight": 10,
                                     "weightDevice": [{"major": 8, "minor": 0, "weight": 700}]}})
    assert fake.wrote("io.bfq.weight") == ["300", "8:0 700"]
    assert fake.wrote("io.weight") == []


def test_io_weight_device_without_bfq(fake: Fake) -> None:
    fake.cgroup().apply({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 1000},
                                                      {"major": 8, "minor": 16, "leafWeight": 10}]}})
    assert fake.wrote("io.weight") == ["8:0 10000"]
    assert io_weight_from_blkio(10) == 1 and io_weight_from_blkio(1000) == 10000


# --------------------------------------------------------------------------------------- hugetlb, rdma
def test_unknown_hugepage_size(fake: Fake) -> None:
    with pytest.raises(ContainerError, match=r"^linux\.resources\.hugepageLimits\[0\]\.pageSize: '3MB' is not a "
                                             r"huge page size of this host"):
        fake.cgroup().apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})


def test_rdma_needs_a_limit(fake: Fake) -> None:
    with pytest.raises(ConfigError, match=r"^linux\.resources\.rdma\.mlx4_0: must set hcaHandles or hcaObjects"):
        fake.cgroup().apply({"rdma": {"mlx4_0": {}}})
    fake.cgroup().apply({"rdma": {"mlx4_0": {"hcaObjects": 1000}}})
    assert fake.wrote("rdma.max") == ["mlx4_0 hca_object=1000"]


# --------------------------------------------------------------------------------- refusals on v2 hosts
@pytest.mark.parametrize("resources, message", [
    ({"pids": {"limit": 5}}, r"linux\.resources\.pids\.limit: the pids controller is not mounted on this host"),
    ({"cpu": {"cpus": "0"}}, r"linux\.resources\.cpu\.cpus: the cpuset controller is not mounted"),
    ({"network": {"classID": 1}}, r"linux\.resources\.network\.classID: the net_cls controller is not mounted on "
                                  r"this host \(it exists on cgroup v1 only\)"),
    ({"unified": {"pids.max": "5"}}, r"linux\.resources\.unified\.pids\.max: the pids controller is not available"),
    ({"unified": {"nodot": "5"}}, r"linux\.resources\.unified\.nodot: must be CONTROLLER\.FILE"),
    ({"unified": {"../x.y": "5"}}, r"linux\.resources\.unified\.\.\./x\.y: must be a cgroup file name"),
])
def test_unavailable_is_refused_before_any_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  resources: dict, message: str) -> None:
    fake = Fake(tmp_path, monkeypatch, available="cpu memory io")
    with pytest.raises((ContainerError, ConfigError), match="^" + message):
        fake.cgroup().apply({"memory": {"limit": 1 << 30}, **resources})
    assert fake.writes == []


def test_enabling_refused_names_the_field(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    write = core.write_value

    def busy(path: str, value: str) -> None:
        if path.endswith("pod/cgroup.subtree_control") and "+memory" in value:
            raise OSError(errno.EBUSY, "Device or resource busy")
        write(path, value)

    monkeypatch.setattr(core, "write_value", busy)
    with pytest.raises(ContainerError, match=r"^linux\.resources\.memory\.limit: cannot enable the memory "
                                             r"controller in .*/pod/cgroup\.subtree_control: Device or resource "
                                             r"busy \(the cgroup has processes of its own\)$"):
        fake.cgroup().apply({"pids": {"limit": 3}, "memory": {"limit": 1 << 30}})


def test_unified_on_a_v1_only_host_is_refused(tmp_path: Path) -> None:
    cg = Cgroup({"memory": str(tmp_path)}, roots={"memory": str(tmp_path)})
    with pytest.raises(ContainerError, match=r"^linux\.resources\.unified: cgroup v2 is not mounted on this host"):
        cg.apply({"unified": {"memory.high": "1"}})


# ------------------------------------------------------------------------------------ hybrid (this host)
def test_hybrid_each_controller_where_it_is_mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like this host: memory and pids on v1, hugetlb alone on the unified hierarchy."""
    fake = Fake(tmp_path, monkeypatch, available="hugetlb")
    mem = tmp_path / "v1mem" / "ctr"
    pids = tmp_path / "v1pids" / "ctr"
    mem.mkdir(parents=True)
    pids.mkdir(parents=True)
    for name, v in (("memory.limit_in_bytes", "9223372036854771712"),
                    ("memory.memsw.limit_in_bytes", "9223372036854771712"), ("memory.soft_limit_in_bytes", "0")):
        (mem / name).write_text(v + "\n")
    (pids / "pids.max").write_text("max\n")
    cg = fake.cgroup(memory=mem, pids=pids)
    cg.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 9},
              "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert (mem / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(128 << 20)
    assert (pids / "pids.max").read_text() == "9"
    assert fake.wrote("hugetlb.2MB.max") == [str(4 << 20)]
    assert [w for w in fake.writes if "subtree_control" in w[0]] == [("cgroup.subtree_control", "+hugetlb"),
                                                                     ("pod/cgroup.subtree_control", "+hugetlb")]
    with pytest.raises(ContainerError, match=r"^linux\.resources\.unified\.memory\.high: the memory controller is "
                                             r"mounted as cgroup v1 on this host"):
        cg.apply({"unified": {"memory.high": "1"}})
