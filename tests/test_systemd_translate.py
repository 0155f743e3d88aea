"""The systemd driver's pure translations: unit names, slice paths, linux.resources and device rules as unit
properties, the org.systemd.property.* annotations (GVariant text). What systemd does with them is proven on
the systemd guest (tests/systemd, `tests/guest/run-v2 --systemd`): these pin the mapping, runc's where runc has
one, so that a change to it is seen here on every host.
"""
from __future__ import annotations

import pytest

from pyoci.cgroups import systemd
from pyoci.cgroups.gvariant import GVariantError, parse
from pyoci.cgroups.systemd import (INFINITY, annotation_properties, device_properties, expand_slice,
                                   range_bits, resource_properties, round_cpu_quota, unit_of)
from pyoci.errors import ConfigError


def v252() -> int:
    return 252


def props(res: dict, unified: bool = True, version=v252) -> dict:
    return dict(resource_properties(res, unified, version))


# ------------------------------------------------------------------------------------------ names and paths
@pytest.mark.parametrize("name,path", [
    ("system.slice", "/system.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("kubepods-besteffort-pod1.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"),
    ("-.slice", "/"),
])
def test_expand_slice(name: str, path: str) -> None:
    assert expand_slice(name) == path


@pytest.mark.parametrize("bad", [".slice", "a", "a/b.slice", "a--b.slice", "-a.slice", "a-.slice", "a b.slice"])
def test_expand_slice_refuses(bad: str) -> None:
    with pytest.raises(ConfigError, match="slice"):
        expand_slice(bad)


@pytest.mark.parametrize("path,expected", [
    ("system.slice:docker:abc", ("system.slice", "docker-abc.scope", "/system.slice/docker-abc.scope")),
    ("machine.slice:libpod:abc", ("machine.slice", "libpod-abc.scope", "/machine.slice/libpod-abc.scope")),
    ("", ("system.slice", "pyoci-ID.scope", "/system.slice/pyoci-ID.scope")),
    (":p:", ("system.slice", "p-ID.scope", "/system.slice/p-ID.scope")),
    ("a-b.slice::n", ("a-b.slice", "n.scope", "/a.slice/a-b.slice/n.scope")),
    ("-.slice:x:y", ("-.slice", "x-y.scope", "/x-y.scope")),
    # a name ending in .slice is a slice unit, placed where systemd nests it by its name
    ("k.slice:ignored:k-pod.slice", ("k.slice", "k-pod.slice", "/k.slice/k-pod.slice")),
])
def test_unit_of(path: str, expected: tuple[str, str, str]) -> None:
    assert unit_of(path, "ID") == expected


@pytest.mark.parametrize("bad,words", [
    ("/plain/path", "slice:prefix:name"),
    ("a:b", "slice:prefix:name"),
    ("a:b:c:d", "slice:prefix:name"),
    ("nope:p:n", "not a systemd slice name"),
    ("system.slice:p:a/b", "not a valid systemd unit name"),
    ("system.slice:p:" + "x" * 300, "not a valid systemd unit name"),
])
def test_unit_of_refuses_with_the_field(bad: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        unit_of(bad, "ID")
    assert "linux.cgroupsPath" in str(e.value) and words in str(e.value)


def test_no_systemd_here_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyoci.errors import NotSupported

    monkeypatch.setattr(systemd, "running", lambda: False)
    with pytest.raises(NotSupported, match="systemd is not running"):
        systemd.SystemdCgroup.for_unit("system.slice:x:y", "y")


# ------------------------------------------------------------------------------------------ resources
def test_memory_cpu_pids_as_runc_maps_them_on_v2() -> None:
    p = props({"memory": {"limit": 33554432, "reservation": 1 << 20, "swap": 67108864},
               "cpu": {"shares": 1024, "quota": 50000, "period": 100000}, "pids": {"limit": 20}})
    assert p["MemoryMax"] == ("t", 33554432)
    assert p["MemoryLow"] == ("t", 1 << 20)
    assert p["MemorySwapMax"] == ("t", 67108864 - 33554432)  # OCI swap is memory+swap
    assert p["CPUWeight"] == ("t", 39)  # runc's shares -> weight
    assert p["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert p["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert p["TasksMax"] == ("t", 20)


def test_unlimited_values_are_infinity_and_pids_zero_is_one() -> None:
    p = props({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}})
    assert p["MemoryMax"] == ("t", INFINITY) and p["MemorySwapMax"] == ("t", INFINITY)
    assert p["TasksMax"] == ("t", INFINITY)
    assert props({"pids": {"limit": 0}})["TasksMax"] == ("t", 1)  # systemd refuses 0 (the file gets 0)


def test_v1_host_gets_the_v1_names() -> None:
    p = props({"memory": {"limit": 1 << 25}, "cpu": {"shares": 512}, "blockIO": {"weight": 300}}, unified=False)
    assert p["MemoryLimit"] == ("t", 1 << 25) and p["CPUShares"] == ("t", 512) and p["BlockIOWeight"] == ("t", 300)
    assert "MemoryMax" not in p and "CPUWeight" not in p and "IOWeight" not in p


def test_cpu_quota_rounds_up_to_systemds_step_and_the_files_follow() -> None:
    res = {"cpu": {"quota": 33333, "period": 100000}}
    assert props(res)["CPUQuotaPerSecUSec"] == ("t", 340000)
    assert round_cpu_quota(res)["cpu"]["quota"] == 34000
    assert round_cpu_quota({"cpu": {"quota": 50000}}) == {"cpu": {"quota": 50000}}
    assert res["cpu"]["quota"] == 33333  # the config's dict is not changed


def test_period_alone_and_old_systemd() -> None:
    assert props({"cpu": {"period": 50000}})["CPUQuotaPerSecUSec"] == ("t", INFINITY)
    p = props({"cpu": {"quota": 50000, "period": 50000}, "cpu_": {}}, version=lambda: 241)
    assert "CPUQuotaPeriodUSec" not in p  # systemd < 242 has no such property: the file alone
    assert "AllowedCPUs" not in props({"cpu": {"cpus": "0-1"}}, version=lambda: 243)


def test_version_is_asked_only_when_needed() -> None:
    asked = []
    props({"memory": {"limit": 1 << 25}, "pids": {"limit": 5}}, version=lambda: asked.append(1) or 252)
    assert not asked


def test_cpuset_bits() -> None:
    assert range_bits("0-3,8") == bytes([0x0F, 0x01])
    assert range_bits("1") == b"\x02"
    assert range_bits("3-1") is None and range_bits("x") is None and range_bits("") is None
    assert props({"cpu": {"cpus": "0-1", "mems": "0"}})["AllowedCPUs"] == ("ay", b"\x03")


def test_cpu_idle_is_weight_zero_from_252() -> None:
    assert props({"cpu": {"idle": 1, "shares": 1024}})["CPUWeight"] == ("t", 0)
    assert props({"cpu": {"idle": 1, "shares": 1024}}, version=lambda: 251)["CPUWeight"] == ("t", 39)


def test_block_io() -> None:
    p = props({"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                           "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                           "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}})
    assert p["IOWeight"] == ("t", 4950)  # runc's blkio -> io.weight conversion
    assert p["IODeviceWeight"] == ("a(st)", [("/dev/block/8:0", 910)])
    assert p["IOReadBandwidthMax"] == ("a(st)", [("/dev/block/8:0", 1048576)])
    assert p["IOWriteIOPSMax"] == ("a(st)", [("/dev/block/8:16", 100)])


def test_unified_files_systemd_has_properties_for() -> None:
    p = props({"unified": {"memory.high": "1000000", "memory.min": "max", "pids.max": "7", "cpu.max": "20000 50000",
                           "cpu.weight": "300", "io.latency": "8:0 target=10"}})
    assert p["MemoryHigh"] == ("t", 1000000) and p["MemoryMin"] == ("t", INFINITY) and p["TasksMax"] == ("t", 7)
    assert p["CPUQuotaPerSecUSec"] == ("t", 400000) and p["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert p["CPUWeight"] == ("t", 300)
    assert not [k for k in p if "atency" in k]  # no property: the file alone


# ------------------------------------------------------------------------------------------ devices
DOCKER_RULES = [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"}]


def test_device_allow_list_for_a_whitelist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "_device_groups", lambda: {"char": {"pts": [136], "tty": [4]}, "block": {}})
    p = device_properties(DOCKER_RULES)
    assert p[0] == ("DevicePolicy", ("s", "strict"))
    assert p[1] == ("DeviceAllow", ("a(ss)", []))  # clears what the unit had (update)
    allow = dict(p[2][1][1])
    assert allow["/dev/char/1:5"] == "rwm" and allow["char-pts"] == "rwm"
    assert allow["char-*"] == "m" and allow["block-*"] == "m"
    assert allow["/dev/char/1:3"] == "rwm"  # the defaults every container gets


def test_device_rules_systemd_cannot_say_leave_the_ebpf_filter_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "_device_groups", lambda: {"char": {"dup": [7, 8]}, "block": {}})
    auto = [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    # allow everything but one device: a deny list
    assert device_properties([{"allow": True, "access": "rwm"},
                              {"allow": False, "type": "c", "major": 1, "minor": 3}]) == auto
    # a major whose name is shared with another
    assert device_properties([{"allow": True, "type": "c", "major": 7, "access": "r"}]) == auto
    # a rule for one minor of every major
    assert device_properties([{"allow": True, "type": "c", "minor": 3, "access": "r"}]) == auto
    # a hole in an allowed range
    assert device_properties([{"allow": True, "type": "b", "access": "rwm"},
                              {"allow": False, "type": "b", "major": 8, "minor": 0, "access": "w"}]) == auto


def test_allow_all_and_denies_of_whole_entries() -> None:
    p = dict((k, v) for k, v in device_properties([{"allow": True, "access": "rwm"}])[:1])
    assert p["DevicePolicy"] == ("s", "strict")
    entries = dict(device_properties([{"allow": True, "access": "rwm"}])[2][1][1])
    assert entries == {"char-*": "rwm", "block-*": "rwm"}
    # a deny of exactly an allowed device removes it (here: /dev/null's write)
    entries = dict(device_properties([{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}])[2][1][1])
    assert entries["/dev/char/1:3"] == "rm"
    assert device_properties(None) == []  # update without devices: the unit keeps its own


# ------------------------------------------------------------------------------------------ annotations
def test_annotations_become_properties() -> None:
    p = dict(annotation_properties({
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.RuntimeMaxSec": "5",
        "other": "x"}))
    assert p == {"TimeoutStopUSec": ("t", 123456789), "CollectMode": ("s", "inactive-or-failed"),
                 "RuntimeMaxUSec": ("t", 5000000)}


@pytest.mark.parametrize("key,value,words", [
    ("org.systemd.property.Ab", "1", "at least 3 ASCII letters"),
    ("org.systemd.property.Bad_Name", "1", "at least 3 ASCII letters"),
    ("org.systemd.property.CollectMode", "inactive", "not a GVariant value"),
    ("org.systemd.property.TimeoutStopSec", "'x'", "must be a number"),
])
def test_bad_annotations_name_the_key(key: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        annotation_properties({key: value})
    assert key in str(e.value) and words in str(e.value)


@pytest.mark.parametrize("text,expected", [
    ("uint64 123456789", ("t", 123456789)), ("'a'", ("s", "a")), ('"a\\tb"', ("s", "a\tb")), ("true", ("b", True)),
    ("42", ("i", 42)), ("-3.5", ("d", -3.5)), ("[1, 2]", ("ai", [1, 2])), ("@as []", ("as", [])),
    ("[('/dev/null', 'rw')]", ("a(ss)", [("/dev/null", "rw")])), ("b'ab'", ("ay", b"ab")),
    ("{'a': <1>}", ("a{sv}", {"a": ("i", 1)})), ("0x10", ("i", 16)), ("@t 5", ("t", 5)),
    ("uint32 4294967295", ("u", 4294967295)),
])
def test_gvariant(text: str, expected: tuple[str, object]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["", "[]", "uint64 -1", "byte 256", "'open", "1 2", "[1, 'a']", "{}", "x"])
def test_gvariant_refuses(text: str) -> None:
    with pytest.raises(GVariantError):
        parse(text)
