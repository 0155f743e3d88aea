#!/bin/sh
# Fetch (once) a user-mode Linux newer than Debian 12's and print the path of its linux.uml.
#
#   tests/guest/fetch-uml.sh            fetch if missing, print the path
#   tests/guest/fetch-uml.sh --force    fetch again (the suite's current version)
#
# Why: UML 6.1 (Debian 12) and 6.12 (Debian 13) restore the guest's FPU state with a fixed 832-byte XSAVE
# buffer, which a host whose CPU has a larger XSAVE state (AVX-512, AMX) refuses: the guest's PID 1 dies at
# boot (see tests/guest/xstate.py). UML 7.x sizes that buffer from the host, and runs the guest's tests in a
# third of 6.1's time: run.py boots it unless $PYOCI_GUEST_UML names another kernel.
#
# How: apt-get download of user-mode-linux and libc6 from $PYOCI_GUEST_UML_SUITE (default sid, the Debian
# suite that has UML 7) through a private sources list, status file and cache (the host's apt state and
# packages are untouched), unpacked into $PYOCI_GUEST_CACHE/uml-<suite>. That linux.uml needs glibc >= 2.38
# (Debian 12 has 2.36), so it is given the unpacked libc's dynamic loader and library path (patchelf; running
# it through ld.so instead would move its brk and UML refuses to start). Only the kernel process uses that
# libc; the guest's root stays Debian 12. The kernel's modules come along in usr/lib/uml/modules/<version>.
set -eu

cache=${PYOCI_GUEST_CACHE:-/var/cache/pyoci-guest}
suite=${PYOCI_GUEST_UML_SUITE:-sid}
mirror=${PYOCI_GUEST_MIRROR:-http://deb.debian.org/debian}
dir=$cache/uml-$suite
uml=$dir/usr/bin/linux.uml
lib=$dir/usr/lib/x86_64-linux-gnu

die() { echo "fetch-uml: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
[ "$(uname -m)" = x86_64 ] || die "only x86-64 hosts need a newer UML (this is $(uname -m))"
mkdir -p "$cache"
exec 9>"$cache/.uml-lock"
flock 9

if [ "${1:-}" != "--force" ] && [ -x "$uml" ] && "$uml" --version >/dev/null 2>&1; then
    echo "$uml"
    exit 0
fi
if ! command -v patchelf >/dev/null 2>&1; then
    echo "fetch-uml: installing patchelf" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >&2
fi

tmp=$(mktemp -d "$cache/uml-new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/debs" "$tmp/tree"
echo "deb $mirror $suite main" > "$tmp/apt/sources.list"
: > "$tmp/apt/status"
set -- -q -o Dir::Etc::SourceList="$tmp/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
    -o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts=/nonexistent \
    -o Dir::State::Lists="$tmp/apt/lists" -o Dir::State::status="$tmp/apt/status" \
    -o Dir::Cache="$tmp/apt/cache" -o APT::Sandbox::User=root
echo "fetch-uml: user-mode-linux and libc6 from $suite ($mirror) into $dir" >&2
apt-get "$@" update >"$tmp/apt.log" 2>&1 || { tail -n 20 "$tmp/apt.log" >&2; die "apt-get update for $suite failed"; }
(cd "$tmp/debs" && apt-get "$@" download user-mode-linux libc6) >>"$tmp/apt.log" 2>&1 \
    || { tail -n 20 "$tmp/apt.log" >&2; die "apt-get download from $suite failed"; }
for deb in "$tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tmp/tree"
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >> "$tmp/tree/.pyoci-uml-packages"
done
# The loader and library path are where the tree will be, not where it is unpacked.
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --set-rpath "$lib" "$tmp/tree/usr/bin/linux.uml"
rm -rf "$dir"
mv "$tmp/tree" "$dir"
"$uml" --version >/dev/null 2>&1 || { rm -rf "$dir"; die "the fetched linux.uml does not run"; }
echo "fetch-uml: $(paste -sd, "$dir/.pyoci-uml-packages"), kernel $("$uml" --version | head -n1)" >&2
echo "$uml"
