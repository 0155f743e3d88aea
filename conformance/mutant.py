"""A deliberately broken runtime, for proving that each case detects the breakage it targets.

``python -m conformance.mutant ARGS...`` behaves like the runtime in $CONFORMANCE_REAL (runc)
except for one breakage named by $CONFORMANCE_MUTANT:

* ``cfg:NAME`` rewrites config.json before the real ``create`` (and restores it right after),
  i.e. the runtime ignores or misapplies one config property;
* ``op:NAME`` changes what one operation does or reports (exit codes, state JSON, extra
  actions done through nsenter in the container, ...).

``python -m conformance.selftest`` runs each case against the mutants it lists and checks that
the case fails. Never used against anything but containers the suite itself creates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .probe import CAPS

BASE_MOUNTS = {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
KNOWN_TOP = {"ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks",
             "annotations", "linux"}
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


# --------------------------------------------------------------------------- config mutations

def _extra_mounts(cfg):
    return [m for m in cfg.get("mounts", []) if m["destination"] not in BASE_MOUNTS]


def _hooks(cfg):
    for kind in HOOK_KINDS:
        for h in cfg.get("hooks", {}).get(kind, []):
            yield kind, h


def _wrap_hooks(cfg, shell_code):
    """Run every hook as `sh -c SHELL_CODE PATH ARGS...` ("$0" is the hook path)."""
    for _kind, h in _hooks(cfg):
        args = h.get("args") or [h["path"]]
        h["args"] = ["sh", "-c", shell_code, h["path"], *args[1:]]
        h["path"] = "/bin/sh"


def m_drop(*path):
    def f(cfg):
        d = cfg
        for k in path[:-1]:
            d = d.get(k, {})
        d.pop(path[-1], None)
    return f


def m_reverse_mounts(cfg):
    base = [m for m in cfg["mounts"] if m["destination"] in BASE_MOUNTS]
    cfg["mounts"] = base + list(reversed(_extra_mounts(cfg)))


def m_mount_options_drop(cfg):
    for m in _extra_mounts(cfg):
        m["options"] = [o for o in m.get("options", []) if o.startswith("size=")]


def m_bind_ro_drop(cfg):
    for m in _extra_mounts(cfg):
        m["options"] = [o for o in m.get("options", []) if o != "ro"]


def m_rbind_to_bind(cfg):
    for m in _extra_mounts(cfg):
        m["options"] = ["bind" if o == "rbind" else o for o in m.get("options", [])]


def m_caps_add_sys_admin(cfg):
    caps = cfg["process"].setdefault("capabilities", {})
    for k in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        if k in caps:
            caps[k] = caps[k] + ["CAP_SYS_ADMIN"]


def m_default_process(cfg):
    cfg.setdefault("process", {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                               "env": ["PATH=/bin"]})


def m_set(path, value):
    def f(cfg):
        d = cfg
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = value(d.get(path[-1])) if callable(value) else value
    return f


def m_root_relative_to_cwd(cfg):
    if not os.path.isabs(cfg["root"]["path"]):
        cfg["root"]["path"] = os.path.join(os.getcwd(), cfg["root"]["path"])


def m_ns(fn):
    def f(cfg):
        cfg["linux"]["namespaces"] = fn(cfg["linux"].get("namespaces", []))
    return f


def _dedup(items, key):
    out = {}
    for it in items:
        out[key(it)] = it
    return list(out.values())


def m_rlimits_drop_invalid(cfg):
    from .probe import LIMIT_NAMES
    valid = set(LIMIT_NAMES.values())
    cfg["process"]["rlimits"] = [r for r in cfg["process"].get("rlimits", []) if r["type"] in valid]


def m_rlimits_swap(cfg):
    for r in cfg["process"].get("rlimits", []):
        r["soft"] = r["hard"]


def m_hooks_drop_args_env(cfg):
    for _kind, h in _hooks(cfg):
        h.pop("env", None)
        h["args"] = [h["path"]]


def m_reverse_hooks(cfg):
    for kind in HOOK_KINDS:
        if kind in cfg.get("hooks", {}):
            cfg["hooks"][kind].reverse()


def m_create_container_as_runtime(cfg):
    hooks = cfg.get("hooks", {})
    hooks.setdefault("createRuntime", []).extend(hooks.pop("createContainer", []))


def m_drop_default_mounts(cfg):
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev/shm"]


def m_drop_resources(cfg):
    res = cfg["linux"].get("resources", {})
    for k in ("memory", "pids", "cpu"):
        res.pop(k, None)


def m_userns_shift(cfg):
    for k in ("uidMappings", "gidMappings"):
        for m in cfg["linux"].get(k, []):
            m["hostID"] += 1000


def m_absolutize_destinations(cfg):
    for m in cfg.get("mounts", []):
        m["destination"] = "/" + m["destination"].lstrip("/")


def m_sources_relative_to_cwd(cfg):
    for m in _extra_mounts(cfg):
        if not m.get("source", "/").startswith("/"):
            m["source"] = os.path.join(os.getcwd(), m["source"])


CFG = {
    "sources-relative-to-cwd": m_sources_relative_to_cwd,
    "absolutize-destinations": m_absolutize_destinations,
    "args-default": m_set(("process", "args"), lambda a: a or ["/bin/true"]),
    "args-drop-last": m_set(("process", "args"), lambda a: a[:-1]),
    "bind-ro-drop": m_bind_ro_drop,
    "caps-add-sys-admin": m_caps_add_sys_admin,
    "caps-drop-ambient": m_drop("process", "capabilities", "ambient"),
    "cgroupsPath-elsewhere": m_set(("linux", "cgroupsPath"), lambda p: (p or "/x") + "-elsewhere"),
    "createContainer-as-createRuntime": m_create_container_as_runtime,
    "cwd-absolutize": m_set(("process", "cwd"), lambda c: "/" + c.lstrip("/")),
    "cwd-root": m_set(("process", "cwd"), "/"),
    "default-process": m_default_process,
    "drop-additionalGids": m_drop("process", "user", "additionalGids"),
    "drop-annotations": m_drop("annotations"),
    "drop-consoleSize": m_drop("process", "consoleSize"),
    "drop-default-mounts": m_drop_default_mounts,
    "drop-devices": m_drop("linux", "devices"),
    "drop-domainname": m_drop("domainname"),
    "drop-hooks": m_drop("hooks"),
    "drop-hostname": m_drop("hostname"),
    "drop-maskedPaths": m_drop("linux", "maskedPaths"),
    "drop-oomScoreAdj": m_drop("process", "oomScoreAdj"),
    "drop-personality": m_drop("linux", "personality"),
    "drop-pid-namespace": m_ns(lambda ns: [n for n in ns if n["type"] != "pid"]),
    "drop-readonlyPaths": m_drop("linux", "readonlyPaths"),
    "drop-resources": m_drop_resources,
    "drop-seccomp": m_drop("linux", "seccomp"),
    "drop-sysctl": m_drop("linux", "sysctl"),
    "drop-umask": m_drop("process", "user", "umask"),
    "env-drop-last": m_set(("process", "env"), lambda e: e[:-1]),
    "flip-noNewPrivileges": m_set(("process", "noNewPrivileges"), lambda v: not v),
    "hooks-drop-args-env": m_hooks_drop_args_env,
    "hooks-drop-timeout": lambda cfg: [h.pop("timeout", None) for _k, h in _hooks(cfg)],
    "mount-options-drop": m_mount_options_drop,
    "namespaces-add-network": m_ns(lambda ns: ns + [{"type": "network"}]),
    "namespaces-dedup": m_ns(lambda ns: _dedup(ns, lambda n: n["type"])),
    "namespaces-drop-network": m_ns(lambda ns: [n for n in ns if n["type"] != "network"]),
    "namespaces-drop-path": m_ns(lambda ns: [{"type": n["type"]} for n in ns]),
    "propagation-private": m_set(("linux", "rootfsPropagation"), "private"),
    "propagation-rslave": m_set(("linux", "rootfsPropagation"), "rslave"),
    "rbind-to-bind": m_rbind_to_bind,
    "reverse-device-rules": m_set(("linux", "resources", "devices"), lambda d: list(reversed(d))),
    "reverse-hooks": m_reverse_hooks,
    "reverse-mounts": m_reverse_mounts,
    "rlimits-dedup": m_set(("process", "rlimits"), lambda r: _dedup(r, lambda x: x["type"])),
    "rlimits-drop-invalid": m_rlimits_drop_invalid,
    "rlimits-swap": m_rlimits_swap,
    "root-readonly": m_set(("root", "readonly"), True),
    "root-relative-to-cwd": m_root_relative_to_cwd,
    "root-writable": m_set(("root", "readonly"), False),
    "set-oomScoreAdj": m_set(("process", "oomScoreAdj"), 0),
    "terminal-off": m_set(("process", "terminal"), False),
    "user-root": m_set(("process", "user"), lambda u: {**u, "uid": 0, "gid": 0}),
    "userns-shift-mapping": m_userns_shift,
}

OPS = {
    "state-status-running", "state-status-created", "state-wrong-id", "state-pid-string",
    "state-no-ociversion", "state-no-pid", "state-wrong-pid", "state-relative-bundle",
    "state-unknown-ok", "noid-ok", "pidfile-wrong", "create-starts", "create-replaces",
    "create-rc0", "create-fail-leaves-container", "create-fails-on-unknown",
    "create-fails-on-unknown-cap", "start-noop", "start-rc0", "start-recreates", "kill-noop",
    "kill-sigkill", "kill-created-fails", "kill-rc0", "delete-noop", "delete-forces",
    "delete-rc0", "delete-keeps-cgroup", "delete-removes-bundle-files", "delete-removes-cgroup",
    "hooks-no-stdin", "hooks-stop-at-failure", "no-default-devices",
    "chown-rootfs", "hooks-ignore-failure", "errors-rc0",
}
CFG_AS_OP = {
    "hooks-ignore-failure": lambda cfg: _wrap_hooks(cfg, '"$0" "$@"; exit 0'),
    "hooks-no-stdin": lambda cfg: _wrap_hooks(cfg, 'exec "$0" "$@" < /dev/null'),
}


def _wrap_hooks_of(cfg, kind, shell_code):
    sub = {kind: cfg.get("hooks", {}).get(kind, [])}
    _wrap_hooks({"hooks": sub}, shell_code)


def _stop_at_failure(cfg, mark: str):
    """poststop hooks after a failing one are skipped"""
    _wrap_hooks_of(cfg, "poststop", f'[ -e "{mark}" ] && exit 1; "$0" "$@" && exit 0; '
                   f'touch "{mark}"; exit 1')


def known(mutant: str) -> bool:
    kind, _, name = mutant.partition(":")
    return (kind == "cfg" and name in CFG) or (kind == "op" and name in OPS)


# --------------------------------------------------------------------------- the shim

class Shim:
    def __init__(self, real: str, mutant: str, argv: list[str]):
        self.real = real
        self.kind, _, self.name = mutant.partition(":")
        self.argv = argv
        # split: global options, the command, its arguments
        self.globals: list[str] = []
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            self.globals.append(argv[i])
            if argv[i] in ("--root", "--log", "--log-format", "--criu") and i + 1 < len(argv):
                self.globals.append(argv[i + 1])
                i += 1
            i += 1
        self.cmd = argv[i] if i < len(argv) else ""
        self.args = argv[i + 1:]

    def op(self, name: str) -> bool:
        return self.kind == "op" and self.name == name

    def real_run(self, *args, capture=False, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([self.real, *self.globals, *args], text=True,
                              capture_output=capture, **kw)

    def positional(self) -> list[str]:
        out, i = [], 0
        while i < len(self.args):
            a = self.args[i]
            if a in ("--bundle", "-b", "--pid-file", "--console-socket", "--signal"):
                i += 2
                continue
            if not a.startswith("-"):
                out.append(a)
            i += 1
        return out

    def opt(self, *names) -> str | None:
        for i, a in enumerate(self.args):
            if a in names and i + 1 < len(self.args):
                return self.args[i + 1]
        return None

    def state(self, cid) -> dict | None:
        r = self.real_run("state", cid, capture=True)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def passthrough(self) -> int:
        return self.real_run(*([self.cmd] if self.cmd else []), *self.args).returncode

    def main(self) -> int:
        pos = self.positional()
        cid = pos[0] if pos else None
        if self.op("errors-rc0"):
            self.passthrough()
            return 0
        if self.op("noid-ok") and self.cmd in ("state", "start", "kill", "delete") and not cid:
            return 0
        handler = getattr(self, "do_" + self.cmd.replace("-", "_"), None)
        if handler is None:
            return self.passthrough()
        return handler(cid)

    # -- create
    def do_create(self, cid) -> int:
        bundle = Path(self.opt("--bundle", "-b") or ".").resolve()
        cfg_path = bundle / "config.json"
        original = cfg_path.read_text() if cfg_path.exists() else None
        try:
            cfg = json.loads(original) if original else None
        except ValueError:
            cfg = None
        if cfg is not None:
            if self.op("create-fails-on-unknown"):
                if set(cfg) - KNOWN_TOP or any(k.startswith("org.") for k in
                                               list(cfg.get("process", {})) + list(cfg.get("linux", {}))):
                    print("mutant: unknown property", file=sys.stderr)
                    return 1
            if self.op("create-fails-on-unknown-cap"):
                caps = cfg.get("process", {}).get("capabilities", {})
                if any(c not in CAPS for v in caps.values() for c in v):
                    print("mutant: unknown capability", file=sys.stderr)
                    return 1
            mutate = CFG.get(self.name) if self.kind == "cfg" else CFG_AS_OP.get(self.name)
            if self.op("hooks-stop-at-failure"):
                mutate = lambda c: _stop_at_failure(c, str(bundle / ".mutant-hook-failed"))  # noqa: E731
            if mutate is not None:
                mutate(cfg)
                cfg_path.write_text(json.dumps(cfg))
        if self.op("create-replaces") and cid and self.state(cid) is not None:
            self.real_run("delete", "--force", cid, capture=True)
        try:
            rc = self.real_run("create", *self.args).returncode
        finally:
            if original is not None:
                cfg_path.write_text(original)
        if rc != 0:
            if self.op("create-fail-leaves-container") and cfg is not None:
                cfg["mounts"] = [m for m in cfg.get("mounts", []) if not m.get("source", "").startswith("/")
                                 or os.path.exists(m["source"])]
                cfg["process"]["args"] = ["/bin/sleep", "60"]
                cfg_path.write_text(json.dumps(cfg))
                try:
                    self.real_run("create", *self.args, capture=True)
                finally:
                    cfg_path.write_text(original)
            return 0 if self.op("create-rc0") else rc
        st = self.state(cid) or {}
        pid = st.get("pid")
        if self.op("create-starts"):
            self.real_run("start", cid)
        if self.op("pidfile-wrong") and self.opt("--pid-file") and pid:
            Path(self.opt("--pid-file")).write_text(str(pid + 1))
        if self.op("no-default-devices") and pid:
            subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "/bin/rm", "-f", "/dev/null",
                            "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                            "/dev/ptmx", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr"],
                           capture_output=True)
        if self.op("chown-rootfs"):
            for p in (bundle / "rootfs", bundle / "rootfs" / "bin" / "busybox",
                      bundle / "rootfs" / "etc" / "passwd"):
                os.lchown(p, 100000, 200000)
        if self.op("delete-keeps-cgroup") and pid:
            dirs = []
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                dirs.append(line)
            (self._side(cid)).write_text(json.dumps({"pid": pid, "cgroup": dirs}))
        return 0

    def _side(self, cid) -> Path:
        root = Path(self.globals[self.globals.index("--root") + 1]) if "--root" in self.globals else Path("/tmp")
        return root / f".mutant-{cid}.json"

    # -- start
    def do_start(self, cid) -> int:
        if self.op("start-noop"):
            return 0
        if self.op("start-recreates") and cid:
            st = self.state(cid)
            if st and st.get("status") == "created":
                out = os.readlink(f"/proc/{st['pid']}/fd/1")
                err = os.readlink(f"/proc/{st['pid']}/fd/2")
                self.real_run("delete", "--force", cid, capture=True)
                with open(out, "ab") as o, open(err, "ab") as e:
                    subprocess.run([self.real, *self.globals, "create", "--bundle", st["bundle"], cid],
                                   stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        rc = self.real_run("start", *self.args).returncode
        return 0 if self.op("start-rc0") else rc

    # -- state
    def do_state(self, cid) -> int:
        r = self.real_run("state", *self.args, capture=True)
        if r.returncode != 0:
            if self.op("state-unknown-ok"):
                print(json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "stopped", "bundle": "/"}))
                return 0
            sys.stderr.write(r.stderr)
            return r.returncode
        st = json.loads(r.stdout)
        n = self.name if self.kind == "op" else ""
        if n == "state-status-running" and st.get("status") in ("created", "stopped"):
            st["status"] = "running"
        elif n == "state-status-created" and st.get("status") in ("running", "stopped"):
            st["status"] = "created"
        elif n == "state-wrong-id":
            st["id"] = st["id"] + "-x"
        elif n == "state-pid-string" and "pid" in st:
            st["pid"] = str(st["pid"])
        elif n == "state-no-ociversion":
            st.pop("ociVersion", None)
        elif n == "state-no-pid":
            st.pop("pid", None)
        elif n == "state-wrong-pid" and st.get("pid"):
            st["pid"] = 1
        elif n == "state-relative-bundle":
            st["bundle"] = os.path.relpath(st["bundle"])
        print(json.dumps(st, indent=2))
        return 0

    # -- kill
    def do_kill(self, cid) -> int:
        if self.op("kill-noop"):
            return 0
        if self.op("kill-created-fails") and cid and (self.state(cid) or {}).get("status") == "created":
            print("mutant: cannot kill a created container", file=sys.stderr)
            return 1
        args = list(self.args)
        if self.op("kill-sigkill") and len(self.positional()) >= 2:
            args[-1] = "KILL"
        rc = self.real_run("kill", *args).returncode
        return 0 if self.op("kill-rc0") else rc

    # -- delete
    def do_delete(self, cid) -> int:
        if self.op("delete-noop"):
            return 0
        st = self.state(cid) if cid else None
        args = list(self.args)
        if self.op("delete-forces") and "--force" not in args and "-f" not in args:
            args.insert(0, "--force")
        rc = self.real_run("delete", *args).returncode
        if rc == 0 and st:
            if self.op("delete-removes-bundle-files"):
                (Path(st["bundle"]) / "config.json").unlink(missing_ok=True)
            if self.op("delete-removes-cgroup"):
                self._remove_cgroups_path(Path(st["bundle"]))
            if self.op("delete-keeps-cgroup") and self._side(cid).exists():
                info = json.loads(self._side(cid).read_text())
                self._side(cid).unlink()
                self._leak_cgroups(info["cgroup"])
        return 0 if self.op("delete-rc0") else rc

    def _remove_cgroups_path(self, bundle: Path):
        """rmdir the configured cgroupsPath in every hierarchy (even one the runtime did not
        create), as an over-eager runtime would."""
        from .cases._util import _cgroup_mounts
        try:
            path = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"]
        except (OSError, ValueError, KeyError):
            return
        if "conformance-" not in path or not path.startswith("/"):
            return
        for _fs, _c, mp in _cgroup_mounts():
            try:
                os.rmdir(mp + path)
            except OSError:
                pass

    def _leak_cgroups(self, lines):
        """Recreate the container's (removed) cgroup directories, as a runtime that forgets to
        remove them would leave them. Recorded in $CONFORMANCE_MUTANT_LEAKS for the selftest
        to remove."""
        from .cases._util import _cgroup_mounts
        mounts = _cgroup_mounts()
        made = []
        for line in lines:
            hid, ctrls, path = line.split(":", 2)
            if path == "/" or "conformance-" not in path:
                continue
            for fs, c, mp in mounts:
                if (hid == "0" and fs == "cgroup2") or (fs == "cgroup" and set(ctrls.split(",")) <= c and c):
                    d = Path(mp + path)
                    try:
                        d.mkdir()
                        made.append(str(d))
                    except OSError:
                        pass
                    break
        leaks = os.environ.get("CONFORMANCE_MUTANT_LEAKS")
        if leaks and made:
            with open(leaks, "a") as f:
                f.write("\n".join(made) + "\n")


def main() -> int:
    real = os.environ.get("CONFORMANCE_REAL") or shutil.which("runc")
    mutant = os.environ.get("CONFORMANCE_MUTANT", "")
    if not real:
        print("conformance.mutant: set CONFORMANCE_REAL", file=sys.stderr)
        return 2
    if mutant and not known(mutant):
        print(f"conformance.mutant: unknown mutant {mutant!r}", file=sys.stderr)
        return 2
    return Shim(real, mutant, sys.argv[1:]).main()


if __name__ == "__main__":
    sys.exit(main())
