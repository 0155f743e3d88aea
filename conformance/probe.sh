#!/bin/sh
# Conformance probe, installed as /probe in every test rootfs (busybox sh, no other deps).
# Prints key=value lines describing what the container process sees, then evaluates each
# argument as a shell snippet (helpers: kv KEY VALUE, try KEY CMD..., rd KEY FILE).
# Everything is read from /proc/$$ (this shell, i.e. the exec'd container process), not from
# the short-lived helpers, whose credentials/capabilities can differ.
P=$$
kv() { printf '%s=%s\n' "$1" "$2"; }
rd() { if [ -e "$2" ]; then kv "$1" "$(cat "$2" 2>&1 | head -c 4096)"; else kv "$1" "<missing>"; fi; }
try() {
    _k=$1; shift
    if _o=$("$@" 2>&1); then kv "$_k" "ok"; else kv "$_k" "fail:$(echo "$_o" | head -n 1)"; fi
}
lines() { # lines KEY FILE: one KEY=line per line of FILE
    [ -r "$2" ] || return 0
    while IFS= read -r _l || [ -n "$_l" ]; do kv "$1" "$_l"; done < "$2"
}

kv probe.start 1
kv pid "$P"
kv argv0 "$0"
kv uid "$(id -u)"
kv gid "$(id -g)"
kv groups "$(id -G)"
kv hostname "$(uname -n)"
kv uname.m "$(uname -m)"
kv cwd "$(pwd -P)"
kv umask "$(umask)"
if [ -t 0 ]; then kv tty.stdin yes; else kv tty.stdin no; fi
if [ -t 1 ]; then kv tty.stdout yes; else kv tty.stdout no; fi
kv tty "$(tty 2>/dev/null)"
if [ -r /proc/$P/status ]; then
    kv proc mounted
    rd domainname /proc/sys/kernel/domainname
    rd oom_score_adj /proc/$P/oom_score_adj
    while IFS= read -r _l; do
        case "$_l" in
            Uid:*|Gid:*|Groups:*|Cap*|NoNewPrivs:*|Seccomp:*)
                _n=${_l%%:*}; _v=${_l#*:}; kv "status.$_n" "$(echo $_v)";;
        esac
    done < /proc/$P/status
    for _ns in cgroup ipc mnt net pid pid_for_children time user uts; do
        [ -e /proc/$P/ns/$_ns ] && kv "ns.$_ns" "$(readlink /proc/$P/ns/$_ns)"
    done
    tr '\0' '\n' < /proc/$P/environ | while IFS= read -r _l || [ -n "$_l" ]; do kv env "$_l"; done
    lines limit /proc/$P/limits
    lines mount /proc/$P/mountinfo
    lines cgroup /proc/$P/cgroup
    lines uid_map /proc/$P/uid_map
    lines gid_map /proc/$P/gid_map
else
    kv proc missing
fi
for _f in /dev/* /dev/.[!.]*; do
    [ -e "$_f" ] || [ -L "$_f" ] || continue
    kv dev "$(stat -c '%n|%F|%t:%T|%a|%u:%g' "$_f" 2>/dev/null)|$(readlink "$_f" 2>/dev/null)"
done
kv probe.report 1
for _snippet in "$@"; do
    eval "$_snippet"
done
kv probe.done 1
