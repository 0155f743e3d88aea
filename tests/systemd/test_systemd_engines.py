"""Docker and Podman with their default settings on a systemd host: the systemd cgroup driver.

The scenarios of tests/v2/test_engines.py (run, limits, a device that must not open, exec, pause/unpause, stats,
update, stop, rm; each with runc, the oracle, and with pyoci), here on the guest booted with systemd as PID 1,
where that module's DRIVER is "systemd": dockerd with native.cgroupdriver=systemd (`docker info` says so),
podman with --cgroup-manager systemd. Only here: test_systemd_unit (the container is a transient scope with the
limits as properties, the runtime was called with --systemd-cgroup), the unit's properties after update, and no
unit left after rm.
"""
from v2.test_engines import *  # noqa: F401,F403 - the same scenarios, collected here
