#!/bin/sh
# The job of the guest booted with systemd as PID 1 (run.py --systemd): ExecStart of pyoci-guest-job.service
# (tests/guest/systemd/), installed as /sbin/pyoci-guest-job by build-root.sh. As init.sh does for the plain
# guest, it hostfs-mounts the run directory named by pyoci_run= on the kernel command line at /pyoci-run and
# runs the job.sh the runner wrote there; then it powers the guest off, whatever happens. systemd has mounted
# proc, sysfs, cgroup2, devtmpfs, devpts, /dev/shm, mqueue and /run; the tmpfs on /tmp, /var/tmp, /root and the
# engines' fixed state paths come from the root's /etc/fstab (build-root.sh), before any service starts.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
R=/pyoci-run

trap 'sync; systemctl --no-block poweroff' EXIT

run=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^pyoci_run=//p' | tail -n 1)
if [ -z "$run" ]; then
    echo "pyoci-guest-job: no pyoci_run=HOSTDIR on the kernel command line" > /dev/console
    exit 1
fi
if ! mount -t hostfs -o "$run" none "$R"; then
    echo "pyoci-guest-job: cannot hostfs-mount $run" > /dev/console
    exit 1
fi
: > "$R/booted"
# The boot is over once this unit runs (Type=exec): what it took, and anything that failed on the way.
timeout 60 systemctl is-system-running --wait > "$R/system-state" 2>&1
systemd-analyze time > "$R/systemd-analyze" 2>&1
systemctl list-units --failed --plain --no-legend --no-pager > "$R/failed-units" 2>&1
sh "$R/job.sh" > "$R/job.log" 2>&1 < /dev/null
echo "$?" > "$R/job.rc"
exit 0
