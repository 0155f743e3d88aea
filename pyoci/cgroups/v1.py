"""cgroup v1 translations of linux.resources: memory, cpu and blkio, with runc's write-order rules.

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


def memory(ap: Apply, d: str, limit: int, reservation: int, swap: int, swappiness: int | None,
           flags: dict[str, bool | None]) -> None:
    M = R + ".memory"
    memsw = "memory.memsw.limit_in_bytes"
    has_memsw = os.path.exists(os.path.join(d, memsw))
    if limit == -1 and swap == 0 and has_memsw:
        swap = -1  # unlimited memory means unlimited memory+swap (runc)
    if swap and not has_memsw:
        if swap == -1:
            swap = 0  # no swap accounting: nothing to lift
        else:
            raise ContainerError("%s.swap: swap accounting is not enabled on this host (no %s; boot with "
                                 "swapaccount=1)" % (M, memsw))

    def set_limit() -> None:
        if not limit:
            return
        try:
            core.write_value(os.path.join(d, "memory.limit_in_bytes"), str(limit))
        except OSError as e:
            extra = ""
            if e.errno == errno.EBUSY:
                try:
                    extra = " (usage %s, peak %s)" % (core.read_value(os.path.join(d, "memory.usage_in_bytes")),
                                                      core.read_value(os.path.join(d, "memory.max_usage_in_bytes")))
                except OSError:
                    pass
            raise ContainerError("%s.limit: cannot write memory.limit_in_bytes=%d: %s%s"
                                 % (M, limit, e.strerror, extra)) from None

    def set_swap() -> None:
        if swap:
            ap.write(M + ".swap", d, memsw, str(swap))

    def limits() -> None:
        # the kernel keeps limit <= memsw at every step: raising, memsw goes first; lowering, limit first
        if limit and swap:
            cur = int(ap.read(M + ".limit", d, "memory.limit_in_bytes"))
            if swap == -1 or cur < swap:
                set_swap()
                set_limit()
                return
        set_limit()
        set_swap()

    if limit or swap:
        ap.op(M + ".limit", limits)
    if reservation:
        ap.write_op(M + ".reservation", d, "memory.soft_limit_in_bytes", str(reservation))
    if flags["disableOOMKiller"]:
        ap.write_op(M + ".disableOOMKiller", d, "memory.oom_control", "1")
    if swappiness is not None:
        ap.write_op(M + ".swappiness", d, "memory.swappiness", str(swappiness))
    if flags["useHierarchy"] is not None:
        value = "1" if flags["useHierarchy"] else "0"

        def hierarchy() -> None:
            err = ap.try_write(d, "memory.use_hierarchy", value)
            if err == errno.EINVAL and value == "0":
                from pyoci import log

                log.warning("%s.useHierarchy: false ignored: this kernel always accounts memory "
                            "hierarchically" % M)
            elif err:
                raise ContainerError("%s.useHierarchy: cannot write memory.use_hierarchy=%s: %s"
                                     % (M, value, os.strerror(err)))

        ap.op(M + ".useHierarchy", hierarchy)


def cpu(ap: Apply, d: str, shares: int, quota: int, period: int, burst: int | None, rt_runtime: int,
        rt_period: int, idle: int | None) -> None:
    C = R + ".cpu"
    if shares:
        def set_shares() -> None:
            ap.write(C + ".shares", d, "cpu.shares", str(shares))
            got = int(ap.read(C + ".shares", d, "cpu.shares"))
            if got != shares:  # the kernel clamps silently
                raise ContainerError("%s.shares: %d is out of range: the %s allowed cpu.shares is %d"
                                     % (C, shares, "maximum" if shares > got else "minimum", got))

        ap.op(C + ".shares", set_shares)

    def bandwidth() -> None:
        # runc's order: a new period or burst may be refused (EINVAL) until the new quota is in
        retry_period = retry_burst = False
        if period:
            err = ap.try_write(d, "cpu.cfs_period_us", str(period))
            if err == errno.EINVAL and quota:
                retry_period = True
            elif err:
                raise ContainerError("%s.period: cannot write cpu.cfs_period_us=%d: %s"
                                     % (C, period, os.strerror(err)))
        if burst is not None:
            err = ap.try_write(d, "cpu.cfs_burst_us", str(burst))
            if err == errno.ENOENT:
                from pyoci import log

                log.debug("%s.burst: ignored: this kernel has no cpu.cfs_burst_us" % C)
            elif err == errno.EINVAL and quota:
                retry_burst = True
            elif err:
                raise ContainerError("%s.burst: cannot write cpu.cfs_burst_us=%d: %s"
                                     % (C, burst, os.strerror(err)))
        if quota:
            ap.write(C + ".quota", d, "cpu.cfs_quota_us", str(quota))
            if retry_period:
                ap.write(C + ".period", d, "cpu.cfs_period_us", str(period))
            if retry_burst:
                ap.write(C + ".burst", d, "cpu.cfs_burst_us", str(burst))

    if period or quota or burst is not None:
        ap.op(C + ".quota", bandwidth)
    if idle is not None:
        ap.write_op(C + ".idle", d, "cpu.idle", str(idle))

    def realtime() -> None:
        retry = False
        if rt_period:
            err = ap.try_write(d, "cpu.rt_period_us", str(rt_period))
            if err == errno.EINVAL and rt_runtime:
                retry = True
            elif err:
                raise ContainerError("%s.realtimePeriod: cannot write cpu.rt_period_us=%d: %s"
                                     % (C, rt_period, os.strerror(err)))
        if rt_runtime:
            ap.write(C + ".realtimeRuntime", d, "cpu.rt_runtime_us", str(rt_runtime))
            if retry:
                ap.write(C + ".realtimePeriod", d, "cpu.rt_period_us", str(rt_period))

    if rt_period or rt_runtime:
        if not os.path.exists(os.path.join(d, "cpu.rt_runtime_us")):
            field = C + (".realtimeRuntime" if rt_runtime else ".realtimePeriod")
            raise ContainerError("%s: real-time group scheduling is not available on this host (the kernel "
                                 "has no CONFIG_RT_GROUP_SCHED)" % field)
        ap.op(C + ".realtimeRuntime", realtime)


def block_io(ap: Apply, d: str, weight: int, leaf: int, wdev: list, throttles: list) -> None:
    B = R + ".blockIO"
    if os.path.exists(os.path.join(d, "blkio.weight")):
        wfile, wdfile = "blkio.weight", "blkio.weight_device"
    elif os.path.exists(os.path.join(d, "blkio.bfq.weight")):
        wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"
    else:
        wfile = wdfile = ""
    no_weight = ("proportional I/O weights are not available on this host (no blkio.weight nor "
                 "blkio.bfq.weight: no disk uses the BFQ or CFQ scheduler)")
    if weight:
        if not wfile:
            raise ContainerError("%s.weight: %s" % (B, no_weight))
        ap.write_op(B + ".weight", d, wfile, str(weight))
    no_leaf = "leaf weights are not available on this host (no %s: they need the CFQ scheduler)"
    if leaf:
        if not os.path.exists(os.path.join(d, "blkio.leaf_weight")):
            raise ContainerError("%s.leafWeight: %s" % (B, no_leaf % "blkio.leaf_weight"))
        ap.write_op(B + ".leafWeight", d, "blkio.leaf_weight", str(leaf))
    for f, dev, w, lw in wdev:
        if w:
            if not wdfile:
                raise ContainerError("%s.weight: %s" % (f, no_weight))
            ap.write_op(f + ".weight", d, wdfile, "%s %d" % (dev, w))
        if lw:
            if not os.path.exists(os.path.join(d, "blkio.leaf_weight_device")):
                raise ContainerError("%s.leafWeight: %s" % (f, no_leaf % "blkio.leaf_weight_device"))
            ap.write_op(f + ".leafWeight", d, "blkio.leaf_weight_device", "%s %d" % (dev, lw))
    for f, dev, rate, v1file, _v2key in throttles:
        ap.write_op(f, d, v1file, "%s %d" % (dev, rate))
