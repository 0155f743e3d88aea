"""cgroup v2 translations of linux.resources (runc's and crun's conversions) and controller enabling.

Called by pyoci.cgroups.resources.Apply with the controller's directory; each function only queues operations.
"""
from __future__ import annotations

import errno
import os

from pyoci.cgroups import core
from pyoci.cgroups.core import R
from pyoci.errors import ContainerError

TYPE_CHECKING = False  # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from pyoci.cgroups.resources import Apply


def cpu_weight_from_shares(shares: int) -> int:
    """runc's v1 -> v2 conversion: [2, 262144] -> [1, 10000] linearly (0 means unset)."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight_from_blkio(weight: int) -> int:
    """runc's blkio.weight -> io.weight conversion: [10, 1000] -> [1, 10000] linearly."""
    if weight == 0:
        return 0
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_for_v2(swap: int, limit: int) -> int:
    """OCI swap is memory+swap (v1 memsw); memory.swap.max is swap alone. 0 = unset, -1 = max (runc's rules)."""
    if limit == -1 and swap == 0:
        return -1  # "memory unlimited" means swap unlimited too, as on v1
    if swap in (-1, 0):
        return swap
    if limit == -1:
        return swap
    if limit == 0:
        raise ValueError("a swap limit needs a memory limit (linux.resources.memory.limit)")
    if limit < 0:
        raise ValueError("invalid memory limit %d" % limit)
    if swap < limit:
        raise ValueError("memory+swap limit %d is below the memory limit %d" % (swap, limit))
    return swap - limit


def _v2num(value: int) -> str:
    """v2 .max/.low value: 0 unset (''), -1 (any negative) 'max'."""
    if value == 0:
        return ""
    return "max" if value < 0 else str(value)


def enable(ap: Apply) -> None:
    """+controller in cgroup.subtree_control of every ancestor of the container's v2 cgroup (runc/crun)."""
    root = ap.v2_root() or ""
    path = ap.cg.paths[""]
    rel = os.path.relpath(path, root)
    parts = [] if rel == "." else rel.split("/")
    ancestors = ([root] if parts else []) + [os.path.join(root, *parts[:i]) for i in range(1, len(parts))]
    for a in ancestors:
        try:
            enabled = set(core.read_value(os.path.join(a, "cgroup.subtree_control")).split())
        except OSError as e:
            field = next(iter(ap.v2_needed.values()))
            raise ContainerError("%s: cannot read %s/cgroup.subtree_control: %s" % (field, a, e.strerror)) from None
        missing = [c for c in ap.v2_needed if c not in enabled]
        if not missing:
            continue
        if ap.try_write(a, "cgroup.subtree_control", " ".join("+" + c for c in missing)) == 0:
            continue
        for c in missing:  # find the one the kernel refuses
            try:
                core.write_value(os.path.join(a, "cgroup.subtree_control"), "+" + c)
            except OSError as e:
                hint = " (the cgroup has processes of its own)" if e.errno == errno.EBUSY else ""
                raise ContainerError("%s: cannot enable the %s controller in %s/cgroup.subtree_control: %s%s"
                                     % (ap.v2_needed[c], c, a, e.strerror, hint)) from None


def memory(ap: Apply, d: str, limit: int, reservation: int, swap: int, swappiness: int | None,
           flags: dict[str, bool | None]) -> None:
    M = R + ".memory"
    from pyoci import log

    if limit or reservation or swap:
        try:
            swap2 = swap_for_v2(swap, limit)
        except ValueError as e:
            raise ContainerError("%s.swap: %s" % (M, e)) from None
        swap_value = _v2num(swap2)
        if swap_value == "" and swap > 0:
            swap_value = "0"  # memory+swap == memory: no swap at all

        def swap_max() -> None:
            err = ap.try_write(d, "memory.swap.max", swap_value)
            if err == errno.ENOENT and swap_value in ("max", "0"):
                return  # no swap accounting: nothing to set
            if err:
                raise ContainerError("%s.swap: cannot write memory.swap.max=%s: %s"
                                     % (M, swap_value, os.strerror(err)))

        if swap_value:
            ap.op(M + ".swap", swap_max)
        if _v2num(limit):
            ap.write_op(M + ".limit", d, "memory.max", _v2num(limit))
        if _v2num(reservation):
            ap.write_op(M + ".reservation", d, "memory.low", _v2num(reservation))
    if swappiness is not None:
        log.warning("%s.swappiness: ignored: cgroup v2 has no per-cgroup swappiness" % M)
    if flags["disableOOMKiller"]:
        log.warning("%s.disableOOMKiller: ignored: cgroup v2 cannot disable the OOM killer" % M)
    if flags["useHierarchy"] is False:
        log.warning("%s.useHierarchy: false ignored: cgroup v2 is always hierarchical" % M)


def cpu(ap: Apply, d: str, shares: int, quota: int, period: int, burst: int | None, idle: int | None) -> None:
    C = R + ".cpu"
    if idle is not None:
        ap.write_op(C + ".idle", d, "cpu.idle", str(idle))
    if shares and not idle:  # cpu.weight cannot be set on an idle cgroup
        ap.write_op(C + ".shares", d, "cpu.weight", str(cpu_weight_from_shares(shares)))

    def bandwidth() -> None:
        retry_burst = False
        if burst is not None:
            err = ap.try_write(d, "cpu.max.burst", str(burst))
            if err == errno.EINVAL and (quota or period):
                retry_burst = True
            elif err:
                raise ContainerError("%s.burst: cannot write cpu.max.burst=%d: %s"
                                     % (C, burst, os.strerror(err)))
        if quota or period:
            # the half not given stays as it is (update --cpu-period alone keeps the quota, as runc)
            cur = ap.read(C + (".quota" if quota else ".period"), d, "cpu.max").split() + ["100000"]
            value = "%s %s" % ((str(quota) if quota > 0 else "max") if quota else cur[0], period or cur[1])
            ap.write(C + (".quota" if quota else ".period"), d, "cpu.max", value)
            if retry_burst:
                ap.write(C + ".burst", d, "cpu.max.burst", str(burst))

    if quota or period or burst is not None:
        ap.op(C + ".quota", bandwidth)


def block_io(ap: Apply, d: str, weight: int, leaf: int, wdev: list, throttles: list) -> None:
    B = R + ".blockIO"
    from pyoci import log

    if leaf or any(lw for _f, _d, _w, lw in wdev):
        log.warning("%s.leafWeight: ignored: cgroup v2 has no leaf weights" % B)

    def weights() -> None:
        bfq = os.path.join(d, "io.bfq.weight")
        has_bfq = os.path.exists(bfq)
        per_device_bfq = False
        if has_bfq:  # per-device BFQ weights since 5.4: the file then reads "default N"
            try:
                per_device_bfq = not core.read_value(bfq).isdigit()
            except OSError:
                pass
        if weight:
            if has_bfq:
                ap.write(B + ".weight", d, "io.bfq.weight", str(weight))
            else:
                ap.write(B + ".weight", d, "io.weight", str(io_weight_from_blkio(weight)))
        for f, dev, w, _lw in wdev:
            if not w:
                continue
            if per_device_bfq:
                ap.write(f + ".weight", d, "io.bfq.weight", "%s %d" % (dev, w))
            else:
                ap.write(f + ".weight", d, "io.weight", "%s %d" % (dev, io_weight_from_blkio(w)))

    if weight or any(w for _f, _d, w, _lw in wdev):
        ap.op(B + ".weight", weights)
    for f, dev, rate, _v1file, v2key in throttles:
        if rate:  # runc: 0 means no limit, nothing to write
            ap.write_op(f, d, "io.max", "%s %s=%d" % (dev, v2key, rate))
