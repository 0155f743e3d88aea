"""The cgroup v2 device filter (pyoci.cgroups.devices) run by the kernel: the eBPF program attached to a cgroup of
the test's own in the cgroup2 hierarchy, a process in it trying mknod and open.

This runs on both hosts: on a pure v2 host (the guest) that is the hierarchy containers use; on the hybrid build
host the kernel runs a cgroup-device program of the unified hierarchy as well, before the v1 devices controller,
so the same program is proven there too (pyoci itself uses the v1 controller on such a host).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from pyoci.cgroups import hierarchies
from pyoci.cgroups import devices

V2 = next((h.mountpoint for h in hierarchies() if h.version == 2), None)
pytestmark = pytest.mark.skipif(V2 is None, reason="no cgroup2 hierarchy mounted")

# the child: a tmpfs of its own (without nodev, unlike the guest's /tmp) on the test's directory in a private
# mount namespace, joins the cgroup, then reports each operation's errno (0 = it worked)
PROBE = r"""
import json, os, sys
from pyoci import syscalls
from pyoci.syscalls import C
syscalls.unshare(C.CLONE_NEWNS)
syscalls.mount(None, "/", None, C.MS_REC | C.MS_PRIVATE, None)
if sys.argv[3]:
    syscalls.mount("tmpfs", sys.argv[3], "tmpfs", 0, None)
open(os.path.join(sys.argv[1], "cgroup.procs"), "w").write(str(os.getpid()))
out = []
for op, path, arg in json.loads(sys.argv[2]):
    try:
        if op == "mknod":
            kind, major, minor = arg
            os.mknod(path, 0o600 | (0o60000 if kind == "b" else 0o20000), os.makedev(major, minor))
        else:
            os.close(os.open(path, {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[arg] | os.O_NONBLOCK))
        out.append(0)
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""
EPERM = 1


@pytest.fixture
def cgroup() -> Iterator[str]:
    assert V2 is not None
    d = os.path.join(V2, "pyoci-bpf-test-%s" % uuid.uuid4().hex[:10])
    os.mkdir(d)
    yield d
    os.rmdir(d)  # the probe has exited: the cgroup is empty; its programs go with it


def probe(cgroup: str, ops: list[tuple[str, str, object]], nodes: Path | None = None) -> list[int]:
    """Run ops in a child in cgroup; device nodes are made in nodes (the test's tmp_path)."""
    r = subprocess.run([sys.executable, "-c", PROBE, cgroup, json.dumps(ops), str(nodes or "")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def filtered(cgroup: str, rules: list[dict]) -> None:
    devices.attach(cgroup, devices.program(devices.parse(rules)))


def not_denied(err: int) -> bool:
    """The filter let it through: it worked, or the device itself answered (ENXIO, ENODEV: no such driver)."""
    return err != EPERM


def test_the_defaults_allow_what_every_container_needs_and_nothing_else(cgroup: str, tmp_path: Path) -> None:
    filtered(cgroup, [{"allow": False, "access": "rwm"}])  # runc spec's rule: deny the rest
    sda, kmsg = str(tmp_path / "sda"), str(tmp_path / "kmsg")
    got = probe(cgroup, [("open", "/dev/null", "rw"), ("open", "/dev/zero", "r"), ("open", "/dev/urandom", "r"),
                         ("mknod", sda, ("b", 8, 0)), ("open", sda, "r"), ("mknod", kmsg, ("c", 1, 11)),
                         ("open", kmsg, "w")], tmp_path)
    assert got == [0, 0, 0, 0, EPERM, 0, EPERM]
    assert len(devices.attached(cgroup)) == 1


def test_an_allowing_rule_opens_the_device(cgroup: str, tmp_path: Path) -> None:
    filtered(cgroup, [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 11,
                                                            "access": "w"}])
    kmsg = str(tmp_path / "kmsg")
    assert probe(cgroup, [("mknod", kmsg, ("c", 1, 11)), ("open", kmsg, "w"), ("open", kmsg, "r")], tmp_path) == [0, 0, EPERM]


def test_a_denying_rule_closes_a_default_device(cgroup: str) -> None:
    filtered(cgroup, [{"allow": False, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3}])
    assert probe(cgroup, [("open", "/dev/null", "r"), ("open", "/dev/zero", "r")]) == [EPERM, 0]


def test_later_rules_override_earlier_ones_per_access(cgroup: str, tmp_path: Path) -> None:
    filtered(cgroup, [{"allow": True, "access": "rwm"},  # allow everything ...
                      {"allow": False, "type": "b", "major": 8, "access": "rw"},  # ... but disks 8:*
                      {"allow": True, "type": "b", "major": 8, "minor": 16, "access": "r"},  # ... but reading 8:16
                      {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}])  # and writing zero
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    got = probe(cgroup, [("mknod", a, ("b", 8, 0)), ("open", a, "r"), ("mknod", b, ("b", 8, 16)), ("open", b, "r"),
                         ("open", b, "rw"), ("open", "/dev/zero", "r"), ("open", "/dev/zero", "w")], tmp_path)
    assert got[0] == 0 and got[1] == EPERM and got[2] == 0 and not_denied(got[3]) and got[4] == EPERM
    assert got[5] == 0 and got[6] == EPERM


def test_mknod_can_be_denied(cgroup: str, tmp_path: Path) -> None:
    filtered(cgroup, [{"allow": False, "access": "rwm"}, {"allow": False, "type": "c", "access": "m"}])
    assert probe(cgroup, [("mknod", str(tmp_path / "c"), ("c", 1, 11)), ("mknod", str(tmp_path / "b"), ("b", 8, 0)),
                          ("mknod", str(tmp_path / "n"), ("c", 1, 3))], tmp_path) \
        == [EPERM, 0, 0]  # a default device keeps its own mknod


def test_replacing_the_program_leaves_one_filter(cgroup: str, tmp_path: Path) -> None:
    filtered(cgroup, [{"allow": False, "access": "rwm"}])
    first = devices.attached(cgroup)
    filtered(cgroup, [{"allow": False, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 3}])
    second = devices.attached(cgroup)
    assert len(first) == len(second) == 1 and first != second
    assert probe(cgroup, [("open", "/dev/null", "r")]) == [EPERM]
    filtered(cgroup, [{"allow": False, "access": "rwm"}])
    assert probe(cgroup, [("open", "/dev/null", "r")]) == [0]
    assert len(devices.attached(cgroup)) == 1


@pytest.mark.parametrize("rules", [
    [],
    [{"allow": True, "access": "rwm"}],  # matches everything: nothing after it may be emitted unreachable
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "a", "access": "m"}],
    [{"allow": True, "type": "c", "access": "rwm"}, {"allow": True, "type": "b", "access": "rwm"}],
    [{"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"}] * 3,
])
def test_every_shape_of_rules_passes_the_verifier(cgroup: str, rules: list[dict]) -> None:
    filtered(cgroup, rules)
    assert len(devices.attached(cgroup)) == 1


@pytest.mark.parametrize("rule, field", [
    ({"allow": "yes"}, "linux.resources.devices[0].allow"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
    ({"allow": True, "major": "8"}, "linux.resources.devices[0].major"),
    ({"allow": True, "minor": 1 << 40}, "linux.resources.devices[0].minor"),
    ({"allow": True, "access": "rx"}, "linux.resources.devices[0].access"),
])
def test_bad_rules_name_the_field(rule: dict, field: str) -> None:
    from pyoci.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + field.replace("[", r"\[").replace("]", r"\]") + ": "):
        devices.parse([rule])
