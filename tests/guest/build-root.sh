#!/bin/sh
# Build (once) and cache the root filesystem of the user-mode-Linux guest that runs tests/v2 on a pure cgroup v2
# kernel. The root lives outside the checkout: $PYOCI_GUEST_CACHE (default /var/cache/pyoci-guest)/root.
#
#   tests/guest/build-root.sh           build if missing or out of date, print the root's path
#   tests/guest/build-root.sh --force   rebuild
#
# Installs debootstrap and (unless $PYOCI_GUEST_UML names the kernel) user-mode-linux on the host if they are
# missing (Debian 12). The root is `debootstrap --variant=minbase` of $PYOCI_GUEST_SUITE (bookworm) from
# $PYOCI_GUEST_MIRROR with the packages below, plus the guest's init (tests/guest/init.sh) and the booted
# kernel's modules, both refreshed on every call (one root serves every UML version).
# A stamp file (root/.pyoci-guest-stamp) records a key over everything the root is built from; the root is
# rebuilt only when that key changes. The build goes to a temporary directory that replaces the old root only
# when complete, under a lock, so an interrupted build never leaves a half root behind.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${PYOCI_GUEST_CACHE:-/var/cache/pyoci-guest}
suite=${PYOCI_GUEST_SUITE:-bookworm}
mirror=${PYOCI_GUEST_MIRROR:-http://deb.debian.org/debian}
# What runs inside: the host's venv (its interpreter's shared libraries come from the guest's /usr/lib), the
# busybox the tests build their container rootfs from, and the tools the init and the tests call.
packages="systemd systemd-sysv dbus python3 procps iproute2 busybox-static kmod util-linux mount libseccomp2 libcap2 libffi8 libssl3 libsqlite3-0
libbz2-1.0 liblzma5 libreadline8 libncursesw6 libuuid1 zlib1g libexpat1 libtirpc3 libnsl2"
# The peers tests/v2/test_engines.py drives (runc is the oracle), installed after debootstrap with
# `apt-get install --no-install-recommends` in the chroot (apt resolves podman's virtual and alternative
# dependencies, which debootstrap's resolver does not), with services kept from starting by a policy-rc.d.
engines="runc containerd docker.io podman conmon golang-github-containers-common iptables tini
python3-grpcio python3-protobuf protobuf-compiler"
# A CRI client for tests/v2/test_containerd.py (no Debian suite packages crictl): the guest's python3 with
# Debian's grpcio and protobuf (above) and the CRI's api.proto, which bookworm lacks: $cri_package of $cri_suite,
# fetched with apt-get download through a private sources list and status (as fetch-uml.sh does: nothing is
# installed on the host), its api.proto compiled in the chroot by bookworm's protoc into $cri_dir/api_pb2.py.
cri_suite=${PYOCI_GUEST_CRI_SUITE:-trixie}
cri_package=golang-github-kubernetes-cri-api-dev
cri_proto=usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto
cri_dir=usr/share/pyoci-guest/cri-api
format=6   # bump when the steps below change in a way the key does not see

force=0
[ "${1:-}" = "--force" ] && force=1

die() { echo "build-root: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"

# The kernel whose modules go into the root: $PYOCI_GUEST_UML (run.py sets it to the one it boots, e.g. the
# newer UML of fetch-uml.sh), else Debian's user-mode-linux, installed if missing.
uml=${PYOCI_GUEST_UML:-}
need=""
[ -n "$uml" ] || command -v linux.uml >/dev/null 2>&1 || need="$need user-mode-linux"
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
if [ -n "$need" ]; then
    echo "build-root: installing$need" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >&2
fi
uml=${uml:-$(command -v linux.uml)}

kver=$("$uml" --version 2>/dev/null | head -n1 | tr -d '[:space:]')
[ -n "$kver" ] || die "cannot read the version of $uml"
moddir=$(dirname "$uml")/../lib/uml/modules/$kver   # /usr/bin/linux.uml: /usr/lib/uml/modules/<version>
[ -d "$moddir" ] || die "$moddir missing (user-mode-linux package incomplete?)"

key=$(printf '%s\n' "format=$format" "suite=$suite" "mirror=$mirror" \
      "packages=$(echo $packages | tr ' ' '\n' | sort | tr '\n' ' ')" \
      "engines=$(echo $engines | tr ' ' '\n' | sort | tr '\n' ' ')" "cri=$cri_suite $cri_package" \
      | sha256sum | cut -c1-16)

root=$cache/root
stamp=$root/.pyoci-guest-stamp
mkdir -p "$cache"

# What both modes boot with, refreshed on every call (each file by an atomic rename, so that a running guest
# never sees half of one): the plain init (init.sh as /sbin/pyoci-guest-init) and, for systemd as PID 1
# (run.py --systemd), the job unit and its script (systemd/pyoci-guest-job.service, systemd-job.sh as
# /sbin/pyoci-guest-job), drop-ins for journald and the manager, an /etc/fstab with the tmpfs mounts init.sh
# makes itself (the plain init never reads it), the default target and the masks below.
# Masked: what a UML test guest has no use for or that slows its boot (consoles to log in on, udev, time sync,
# timers, wait-online, first-boot questions, pstore), what would write into the shared root (random seed, utmp,
# the ConditionNeedsUpdate= units: ldconfig, hwdb, journal catalog, sysusers, update-done), and the engines'
# own services (the tests start dockerd and containerd themselves; podman's would touch /var/lib/containers).
masked="getty.target getty@.service serial-getty@.service console-getty.service container-getty@.service
systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service systemd-udevd-control.socket
systemd-udevd-kernel.socket systemd-timesyncd.service systemd-networkd-wait-online.service
systemd-firstboot.service systemd-pstore.service systemd-random-seed.service systemd-update-utmp.service
systemd-update-utmp-runlevel.service systemd-journal-flush.service ldconfig.service systemd-hwdb-update.service
systemd-journal-catalog-update.service systemd-sysusers.service systemd-update-done.service
systemd-machine-id-commit.service systemd-repart.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
systemd-tmpfiles-clean.timer docker.service docker.socket containerd.service podman.service podman.socket
podman-restart.service podman-auto-update.service podman-auto-update.timer podman-clean-transient.service"
# tmpfs mounts (mount point, mode): as init.sh mounts them; build-root.sh makes the mount points.
tmpfs="/tmp:1777 /var/tmp:1777 /root:700 /etc/docker:711 /opt/containerd:711 /var/lib/docker:711
/var/lib/containers:711 /var/cache/containers:711"

put() {  # put SRC DEST [MODE]: install a file atomically
    install -m "${3:-0644}" "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}
link() {  # link TARGET DEST: a symlink, atomically
    ln -sfn "$1" "$2.tmp.$$" && mv -fT "$2.tmp.$$" "$2"
}
install_guest() {
    put "$here/init.sh" "$1/sbin/pyoci-guest-init" 0755
    # The booted kernel's modules (overlay, veth, ...) for modprobe inside, one directory per kernel version.
    if [ ! -d "$1/usr/lib/modules/$kver" ]; then
        mkdir -p "$1/usr/lib/modules"
        rm -rf "$1/usr/lib/modules/$kver.tmp.$$"
        cp -a "$moddir" "$1/usr/lib/modules/$kver.tmp.$$" && mv "$1/usr/lib/modules/$kver.tmp.$$" "$1/usr/lib/modules/$kver"
    fi
    put "$here/systemd-job.sh" "$1/sbin/pyoci-guest-job" 0755
    s=$1/etc/systemd
    mkdir -p "$s/system/multi-user.target.wants" "$s/journald.conf.d" "$s/system.conf.d"
    put "$here/systemd/pyoci-guest-job.service" "$s/system/pyoci-guest-job.service"
    link ../pyoci-guest-job.service "$s/system/multi-user.target.wants/pyoci-guest-job.service"
    put "$here/systemd/journald.conf" "$s/journald.conf.d/pyoci-guest.conf"
    put "$here/systemd/system.conf" "$s/system.conf.d/pyoci-guest.conf"
    link /lib/systemd/system/multi-user.target "$s/system/default.target"
    for u in $masked; do
        link /dev/null "$s/system/$u"
    done
    { echo "# tmpfs mounts of the guest booted with systemd (tests/guest/build-root.sh); the plain init makes its own"
      for m in $tmpfs; do
          echo "tmpfs ${m%:*} tmpfs nosuid,nodev,mode=${m#*:} 0 0"
      done; } > "$1/etc/fstab.tmp.$$" && mv -f "$1/etc/fstab.tmp.$$" "$1/etc/fstab"
}

fetch_cri_api() {  # fetch_cri_api ROOT: the CRI's api.proto into ROOT/$cri_dir, compiled there to api_pb2.py
    a=$(mktemp -d "$cache/cri-apt.XXXXXX")
    mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/debs" "$a/tree" "$1/$cri_dir"
    echo "deb $mirror $cri_suite main" > "$a/sources.list"
    : > "$a/status"
    o="-q -o Dir::Etc::SourceList=$a/sources.list -o Dir::Etc::SourceParts=/nonexistent
       -o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts=/nonexistent -o Dir::State::Lists=$a/lists
       -o Dir::State::status=$a/status -o Dir::Cache=$a/cache -o APT::Sandbox::User=root"
    if ! { apt-get $o update && (cd "$a/debs" && apt-get $o download $cri_package); } >"$cache/cri-api.log" 2>&1; then
        tail -n 20 "$cache/cri-api.log" >&2
        rm -rf "$a"
        die "fetching $cri_package from $cri_suite failed (log: $cache/cri-api.log)"
    fi
    dpkg-deb -x "$a"/debs/*.deb "$a/tree"
    # Without gogoproto's file options (its import and the option lines): they steer Go's code generator only,
    # and change nothing on the wire.
    sed -E '/^import "github.com\/gogo\/|^option \(gogoproto\./d' "$a/tree/$cri_proto" > "$1/$cri_dir/api.proto"
    dpkg-deb --show --showformat='${Package} ${Version} '"$cri_suite"'\n' "$a"/debs/*.deb > "$1/$cri_dir/SOURCE"
    rm -rf "$a"
    chroot "$1" protoc -I "/$cri_dir" --python_out="/$cri_dir" "/$cri_dir/api.proto" \
        || die "protoc could not compile the CRI's api.proto"
    chroot "$1" python3 -c "import sys; sys.path.insert(0, '/$cri_dir'); import api_pb2, grpc" \
        || die "the CRI client's modules do not import in the root"
}

exec 9>"$cache/.lock"
flock 9

if [ "$force" = 0 ] && [ -f "$stamp" ] && [ "$(sed -n 's/^key=//p' "$stamp")" = "$key" ]; then
    install_guest "$root"
    echo "$root"
    exit 0
fi

start=$(date +%s)
tmp=$(mktemp -d "$cache/root.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
echo "build-root: debootstrap $suite into $tmp (key $key)" >&2
includes=$(echo $packages | tr ' ' ',')
if ! debootstrap --variant=minbase --include="$includes" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
    tail -n 30 "$cache/debootstrap.log" >&2
    die "debootstrap failed (log: $cache/debootstrap.log)"
fi
# The engines: no daemon may start in the chroot (policy-rc.d 101), nothing recommended comes along.
printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
if ! { chroot "$tmp" apt-get update -q && DEBIAN_FRONTEND=noninteractive chroot "$tmp" \
        apt-get install -y -q --no-install-recommends $engines; } >"$cache/engines.log" 2>&1; then
    tail -n 30 "$cache/engines.log" >&2
    die "installing the engines failed (log: $cache/engines.log)"
fi
fetch_cri_api "$tmp"
chroot "$tmp" apt-get clean >/dev/null 2>&1 || true
rm -f "$tmp/usr/sbin/policy-rc.d"
for p in $packages $engines; do
    chroot "$tmp" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || die "package $p missing from the root"
done

# Mount points the init needs; a quiet, self-contained system.
mkdir -p "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/tmp" "$tmp/run" "$tmp/var/tmp" "$tmp/pyoci-run"
mkdir -p "$tmp/etc/docker" "$tmp/opt/containerd" "$tmp/var/lib/docker" "$tmp/var/lib/containers" \
    "$tmp/var/cache/containers"   # tmpfs mount points for the engines' fixed state paths (init.sh)
# Made at each boot under systemd if missing (logind's state directory, tmpfiles.d of the CNI plugins): made here,
# so that a boot writes nothing into the shared root.
mkdir -p "$tmp/var/lib/systemd/linger" "$tmp/var/lib/cni/networks"
echo pyoci-guest > "$tmp/etc/hostname"
# One machine id for every boot (systemd as PID 1 would otherwise make one at each, in /etc).
chroot "$tmp" systemd-machine-id-setup >/dev/null 2>&1 || true
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* 2>/dev/null || true
install_guest "$tmp"

{
    echo "key=$key"
    echo "suite=$suite"
    echo "mirror=$mirror"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "seconds=$(( $(date +%s) - start ))"
} > "$tmp/.pyoci-guest-stamp"
chroot "$tmp" dpkg-query -W -f='${Package} ${Version}\n' > "$tmp/.pyoci-guest-packages"

if [ -e "$root" ]; then
    mv "$root" "$cache/root.old.$$"
    mv "$tmp" "$root"
    rm -rf "$cache/root.old.$$"
else
    mv "$tmp" "$root"
fi
trap - EXIT
echo "build-root: built $root in $(( $(date +%s) - start ))s" >&2
echo "$root"
