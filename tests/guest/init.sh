#!/bin/sh
# PID 1 of the user-mode-Linux guest (installed as /sbin/pyoci-guest-init in the guest root by build-root.sh).
# It sets up a plain pure-cgroup-v2 system, hostfs-mounts the run directory the host named on the kernel command
# line (pyoci_run=HOSTDIR, which the kernel hands to init as an environment variable), runs the job.sh the
# runner wrote there, and powers the machine off whatever happens (PID 1 must never exit: that panics).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
R=/pyoci-run

off() {
    sync
    /bin/busybox poweroff -f
    echo o > /proc/sysrq-trigger   # not reached unless poweroff failed
    while :; do sleep 1; done
}
trap off EXIT

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# As systemd mounts it on the pure v2 hosts users run.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup \
    || mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
# The kernel mounts devtmpfs on /dev itself (DEVTMPFS_MOUNT); else mount it, else a tmpfs with the basic nodes.
if ! grep -q '^[^ ]* /dev ' /proc/mounts && ! mount -t devtmpfs -o nosuid,mode=755 devtmpfs /dev; then
    mount -t tmpfs -o nosuid,mode=755 tmpfs /dev
    mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5; mknod -m 666 /dev/full c 1 7
    mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
    mknod -m 600 /dev/console c 5 1; mknod -m 666 /dev/ptmx c 5 2
fi
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue 2>/dev/null
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for d in /tmp /var/tmp; do mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$d"; done
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run
mount -t tmpfs -o mode=700 tmpfs /root
# The engines' fixed state paths (Docker's key.json in /etc/docker, containerd's /opt/containerd, podman's
# blob-info and short-name caches), so that nothing they write lands in the shared root; build-root.sh makes
# the mount points.
for d in /etc/docker /opt/containerd /var/lib/docker /var/lib/containers /var/cache/containers; do
    [ -d "$d" ] && mount -t tmpfs -o nosuid,nodev,mode=711 tmpfs "$d"
done
hostname pyoci-guest 2>/dev/null
ip link set lo up 2>/dev/null
# Everything the kernel has, for every child cgroup (cpuset, hugetlb, rdma and misc are not built into it).
echo "+cpu +io +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null \
    || for c in cpu io memory pids; do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done

if [ -z "${pyoci_run:-}" ]; then
    echo "pyoci-guest-init: no pyoci_run=HOSTDIR on the kernel command line" >&2
    exit 1
fi
if ! mount -t hostfs -o "$pyoci_run" none "$R"; then
    echo "pyoci-guest-init: cannot hostfs-mount $pyoci_run" >&2
    exit 1
fi
: > "$R/booted"
sh "$R/job.sh" > "$R/job.log" 2>&1 < /dev/null
echo "$?" > "$R/job.rc"
exit 0
