"""linux.netDevices (runtime-spec 1.3.0): a device of the runtime's network namespace moved into the
container's, renamed, its permanent global addresses kept, set up; refused cleanly when it cannot be.

Each test runs pyoci inside a network namespace of its own (`unshare --net`), where it makes a veth pair: the
host's devices are never touched, and the namespace and the devices go when the test's shell exits."""
from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest

from conftest import Bundle, Runtime

pytestmark = pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"), reason="needs unshare and ip")


def in_own_netns(rt: Runtime, bundle: Bundle, setup: str, *run_args: str) -> subprocess.CompletedProcess[str]:
    """`pyoci run` in a fresh network namespace after the setup commands; the namespace dies with the shell."""
    bundle.save()
    argv = " ".join(shlex.quote(str(a)) for a in rt.argv("run", "--bundle", bundle.path, rt.new_id(), *run_args))
    script = "set -e; ip link set lo up; %s; %s" % (setup, argv)
    return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)


VETH = ("ip link add vhost0 type veth peer name vpeer0; ip addr add 10.77.0.1/24 dev vhost0; "
        "ip addr add fd77::1/64 dev vhost0 nodad")


def test_a_device_moves_renamed_with_its_addresses_and_up(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["netDevices"] = {"vhost0": {"name": "ceth0"}}
    bundle.sh("ip -o link show ceth0; ip -o addr show dev ceth0; ls /sys/class/net")
    r = in_own_netns(rt, bundle, VETH)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    link = next(line for line in out.splitlines() if ": ceth0" in line and "link/" in line)
    assert ",UP" in link or "<UP" in link, link
    assert "inet 10.77.0.1/24" in out and "inet6 fd77::1/64" in out, out
    assert "vhost0" not in out.split(), "the old name is gone inside"


def test_a_name_template_and_the_host_name_by_default(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["netDevices"] = {"vhost0": {"name": "net%d"}, "vpeer0": {}}
    bundle.sh("ls /sys/class/net")
    r = in_own_netns(rt, bundle, VETH)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["lo", "net0", "vpeer0"], r.stdout


def test_only_permanent_global_addresses_are_kept(rt: Runtime, bundle: Bundle) -> None:
    """A link-local (scope link) address and one with a lifetime (not permanent) stay behind, as the spec says."""
    bundle.linux["netDevices"] = {"vhost0": {}}
    bundle.sh("ip -o addr show dev vhost0")
    r = in_own_netns(rt, bundle, VETH + "; ip addr add 169.254.9.9/16 dev vhost0 scope link; "
                     "ip addr add 10.78.0.1/24 dev vhost0 valid_lft 600 preferred_lft 600")
    assert r.returncode == 0, r.stderr
    assert "10.77.0.1/24" in r.stdout
    assert "169.254.9.9" not in r.stdout and "10.78.0.1" not in r.stdout, r.stdout


@pytest.mark.parametrize("devices, setup, needle", [
    ({"nosuch0": {}}, "true", "linux.netDevices.nosuch0: no such network device in the runtime's network namespace"),
    ({"vhost0": {"name": "lo"}}, VETH, "linux.netDevices.vhost0: cannot move it into the container: a device "
                                       "named lo exists there"),
    ({"vhost0": {"name": "a/b"}}, VETH, "linux.netDevices.vhost0.name: 'a/b' is not a network device name"),
    ({"vhost0": {"name": "x" * 16}}, VETH, "linux.netDevices.vhost0.name: 'xxxxxxxxxxxxxxxx' is not a network"),
])
def test_what_cannot_move_is_an_error_naming_the_device(rt: Runtime, bundle: Bundle, devices: dict, setup: str,
                                                        needle: str) -> None:
    bundle.linux["netDevices"] = devices
    bundle.sh("echo ran")
    r = in_own_netns(rt, bundle, setup + "; ip link show vhost0 >/dev/null 2>&1 || true")
    assert r.returncode != 0 and "ran" not in r.stdout, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_a_failed_move_leaves_the_device_where_it_was(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["netDevices"] = {"vhost0": {"name": "lo"}}
    bundle.sh("true")
    bundle.save()
    argv = " ".join(shlex.quote(str(a)) for a in rt.argv("run", "--bundle", bundle.path, rt.new_id()))
    script = "%s; %s; ip -o addr show dev vhost0" % (VETH, argv)
    r = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert "10.77.0.1/24" in r.stdout, r.stdout + r.stderr


def test_net_devices_need_a_network_namespace(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"] if n["type"] != "network"]
    bundle.linux["netDevices"] = {"eth0": {}}
    assert "linux.netDevices: needs a network namespace of the container's" in rt.refuse(bundle)
    out = rt.cmd("validate", "--bundle", bundle.path)
    assert out.returncode != 0 and "linux.netDevices: needs a network namespace" in out.stdout, out
    bundle.linux["netDevices"] = {"eth0": "x"}
    bundle.save()
    assert "linux.netDevices.eth0: expected object" in rt.cmd("validate", "--bundle", bundle.path).stdout
