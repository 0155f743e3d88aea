#!/bin/sh
# Build bundles/busybox/rootfs from Debian's busybox-static: one static binary, its applet links,
# and the few files a container expects (/etc/passwd, /etc/group, mount points).
# Usage: build-rootfs.sh [DEST]   (default: rootfs/ next to this script)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/rootfs}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "build-rootfs: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$bb" >/dev/null 2>&1; then
    echo "build-rootfs: $bb is dynamically linked; install busybox-static" >&2; exit 1
fi
tmp=$(mktemp -d "${dest%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" \
         "$tmp/dev" "$tmp/tmp" "$tmp/root" "$tmp/home" "$tmp/var" "$tmp/run"
chmod 755 "$tmp"
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
daemon:x:1:
tty:x:5:
users:x:100:
nogroup:x:65534:
G
echo pyoci > "$tmp/etc/hostname"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "built $dest"
