"""The Python API: a container through its lifecycle (runtime.md#operations).

    from pyoci import Container
    c = Container.create("web", "/path/to/bundle", root="/run/pyoci")
    c.start(); print(c.state()); c.kill("TERM"); c.delete(force=True)

The CLI is a thin layer over this module.
"""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    import _socket as socket

from pyoci import log
from pyoci.errors import ContainerError, HookError, InvalidState, PyociError, UsageError
from pyoci.state import EXEC_SOCKET, State, Store, proc_start_time, refresh

DEFAULT_ROOT = "/run/pyoci"


SIGKILL = 9


def parse_signal(value: str | int) -> int:
    """runc accepts 9, KILL, SIGKILL (any case). _signal: the signal module's enums cost ~2 ms to import."""
    import _signal

    if isinstance(value, int):
        sig = value
    else:
        text = value.strip().upper()
        if text.isdigit():
            sig = int(text)
        else:
            name = text if text.startswith("SIG") else "SIG" + text
            number = getattr(_signal, name, None) if name[3:4].isalpha() else None
            if not isinstance(number, int):
                raise UsageError("unknown signal %r" % value)
            sig = number
    if not 0 <= sig < _signal.NSIG:  # 0: only checks that the container's init is alive
        raise UsageError("invalid signal number %s" % value)
    return sig


def _hook_dicts(hooks: list[Any]) -> list[dict[str, Any]]:
    return [h.as_dict() for h in hooks]


def _hooks_from(data: list[dict[str, Any]]) -> list[Any]:
    if not data:
        return []
    from pyoci.spec import Hook

    return [Hook(**h) for h in data]


class Container:
    """One container in a state store."""

    def __init__(self, store: Store, st: State) -> None:
        self.store = store
        self._state = st

    @property
    def id(self) -> str:
        return self._state.id

    @property
    def dir(self) -> str:
        return self.store.dir(self.id)

    # --- queries -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, cid: str, root: str = DEFAULT_ROOT) -> Container:
        store = Store(root)
        return cls(store, store.load(cid))

    @staticmethod
    def list(root: str = DEFAULT_ROOT) -> list[State]:
        store = Store(root)
        out = []
        for cid in store.ids():
            try:
                out.append(refresh(store.load(cid), store.dir(cid)))
            except PyociError:
                continue
        return out

    def refresh(self) -> State:
        st = refresh(self.store.load(self.id), self.dir)
        if st.status == "running" and self._cgroup_of(st).frozen():
            st.status = "paused"  # runc's fifth status (pause/resume)
        self._state = st
        return st

    def status(self) -> str:
        return self.refresh().status

    def state(self) -> dict[str, Any]:
        """The OCI state object, plus rootfs/created/owner as runc prints them (go-runc reads them)."""
        st = self.refresh()
        return dict(st.oci(), rootfs=st.rootfs, created=st.created, owner=st.owner)

    # --- create --------------------------------------------------------------------------------------
    @classmethod
    def create(cls, cid: str, bundle: str, root: str = DEFAULT_ROOT, *, pid_file: str | None = None,
               console_socket: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
               no_new_keyring: bool = False, systemd_cgroup: bool = False, pidfd_socket: str | None = None,
               _console: socket.socket | None = None, _spec: Any = None, _subreaper: bool = False,
               _passed: tuple[Sequence[int], int] | None = None) -> Container:
        """Build the container and leave its init waiting for start; nothing remains if this fails.
        pidfd_socket: a unix socket that gets a pidfd of the init (pyoci.pidfd)."""
        from pyoci import spec as specmod
        from pyoci.process import passed_fds
        from pyoci.state import check_id

        check_id(cid)
        if preserve_fds < 0:
            raise UsageError("--preserve-fds must not be negative")
        preserved, listen = _passed or passed_fds(preserve_fds)  # before we open anything ourselves
        spec = _spec or specmod.load(bundle)
        _check_supported(spec)
        proc = spec.process
        assert proc is not None
        from pyoci.process import warn_ungrantable

        warn_ungrantable(proc.capabilities)
        if listen:  # socket activation passes through, as with runc
            proc.env = proc.env + ["LISTEN_FDS=%d" % listen, "LISTEN_PID=1"]
        if proc.terminal and console_socket is None and _console is None:
            raise UsageError("process.terminal is true: --console-socket is required when the runtime detaches")
        if not proc.terminal and console_socket is not None:
            raise UsageError("--console-socket given but process.terminal is false")
        pid_ns = spec.linux.namespace("pid")
        pidfd_to = None
        if pidfd_socket is not None:
            from pyoci import pidfd

            pidfd_to = pidfd.connect(pidfd_socket)  # before anything is made: a wrong path leaves nothing
        store = Store(root)
        try:
            state_dir, lock = store.create(cid)
        except BaseException:
            if pidfd_to is not None:
                pidfd_to.close()
            raise
        log.debug("creating container %s from bundle %s" % (cid, spec.bundle))
        st = State(id=cid, bundle=spec.bundle, annotations=spec.annotations, rootfs=spec.root_path,
                   created=log.timestamp(),
                   hooks={k: _hook_dicts(spec.hooks[k]) for k in ("startContainer", "poststart", "poststop")},
                   own_pid_ns=pid_ns is not None and not pid_ns.path)
        from pyoci.bootstrap import SETUP_TIMEOUT
        from pyoci.hooks import deadline

        st.start_wait = deadline(spec.hooks["startContainer"], SETUP_TIMEOUT) or 0
        builder = _Builder(store, st, spec, state_dir)
        try:
            store.save(st)
            store.save_config(cid, spec.raw)  # `exec` builds its process from this copy
            builder.build(console_socket, _console, listen + preserve_fds, no_pivot, no_new_keyring, systemd_cgroup,
                          lock, _subreaper, preserved)
            if pid_file:
                write_pid_file(pid_file, st.pid)
            if pidfd_to is not None:
                from pyoci import pidfd

                pidfd.send(pidfd_to, st.pid)
        except BaseException as e:
            if pidfd_to is not None:
                pidfd_to.close()
            if builder.abort():
                store.remove(cid)
                if isinstance(e, HookError):  # runtime.md steps 12-13: destroyed, then the poststop hooks
                    from pyoci import hooks

                    hooks.run("poststop", spec.hooks["poststop"], dict(st.oci(), status="stopped"))
            else:
                log.warning("container %s: not fully removed after a failed create: run `delete --force %s`"
                            % (cid, cid))
            if isinstance(e, PyociError):
                raise
            if isinstance(e, OSError):
                raise ContainerError("create %s: %s" % (cid, e)) from None
            raise
        finally:
            os.close(lock)
        return cls(store, st)

    # --- start ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run process.args in the waiting init; returns once it has been exec'd (poststart hooks ran)."""
        lock = self.store.lock(self.id)
        try:
            st = self.refresh()
            if st.status != "created":
                raise InvalidState("container %r is %s, not created: cannot start it" % (self.id, st.status))
            import _socket  # the socket module's enums cost ~2 ms of start-up; plain calls are all we need

            from pyoci import jsonio

            start_hooks = _hooks_from(st.hooks.get("startContainer", []))
            if start_hooks:
                try:
                    _hooks_inside(self.store.load_config(self.id), st, start_hooks)
                except HookError:
                    self._destroy(st)
                    raise
                except PyociError:
                    self._kill_everything(st)
                    raise
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
            try:
                try:
                    with _DirFd(self.dir) as d:
                        sock.connect(d.path(EXEC_SOCKET))
                except OSError:
                    raise InvalidState("container %r is not waiting to start (its init is gone)" % self.id) from None
                os.unlink(os.path.join(self.dir, EXEC_SOCKET))
                running = dict(st.oci(), status="running")
                sock.send(b'{"type": "start"}')  # pyoci-dmz execs on it (the state may be too big for a message)
                log.debug("starting container %s (pid %d)" % (self.id, st.pid))
                try:
                    sock.settimeout(st.start_wait or None)
                    data = sock.recv(1 << 20)  # EOF: the exec succeeded (the socket is close-on-exec)
                except TimeoutError:
                    raise ContainerError("start %s: the container's init did not exec its process within %d s"
                                         % (self.id, st.start_wait)) from None
                finally:
                    st.status = "running"
                    self.store.save(st)
                if data:
                    msg = jsonio.loads(data)
                    raise ContainerError("start %s: %s" % (self.id, msg.get("message", "failed")))
            finally:
                sock.close()
            from pyoci import hooks

            try:
                hooks.run("poststart", _hooks_from(st.hooks.get("poststart", [])), running)
            except HookError:
                self._destroy(st)
                raise
        finally:
            os.close(lock)

    # --- kill ----------------------------------------------------------------------------------------
    def kill(self, sig: str | int = "SIGTERM", all: bool = False) -> None:  # noqa: A002 - runc's flag
        """Signal the init, or with all every process in the container's cgroup. As runc answers (engines
        recognise its words): --all of a stopped container signals what is left in its cgroup and succeeds
        (containerd's shim sends it after the init exits); a plain kill says "container not running"."""
        signum = parse_signal(sig)
        lock = self.store.lock(self.id)
        try:
            st = self.refresh()
            log.debug("signal %d to container %s (%s)" % (signum, self.id, "all processes" if all else st.pid))
            if all:
                if st.status == "creating":
                    raise InvalidState("container %r is being created: container not running" % self.id)
                if signum:
                    self._cgroup().signal_all(signum)
            elif st.status not in ("created", "running", "paused"):
                raise InvalidState("container %r is %s: container not running" % (self.id, st.status))
            else:
                _signal_pid(st.pid, st.pid_start, signum)
        finally:
            os.close(lock)

    # --- delete --------------------------------------------------------------------------------------
    def delete(self, force: bool = False) -> None:
        """Remove a stopped container (force: kill it first); poststop hooks run before this returns.
        Everything is removed or this raises: the state stays, marked removing, for the next delete."""
        from pyoci.errors import NotFound

        try:
            lock = self.store.lock(self.id)
        except NotFound:
            if force:  # removed by a concurrent delete while we waited: --force is idempotent
                return
            raise
        try:
            st = self.refresh()
            if st.status not in ("stopped", "creating") and not force:
                raise InvalidState("container %r is %s: stop it first or use --force" % (self.id, st.status))
            log.debug("deleting container %s (%s)" % (self.id, st.status))
            self._destroy(st)
        finally:
            os.close(lock)

    def _destroy(self, st: State) -> None:
        """runtime.md steps 12-13, under the lock: kill what is left, undo create, remove the state, then run
        the poststop hooks. For delete, and for start when a startContainer or poststart hook failed."""
        if st.bundle and not st.removing:  # a directory without state.json has nothing more to mark
            st.removing = True
            self.store.save(st)
        # always: without a pid namespace of its own, processes can outlive the container's init
        self._kill_everything(st)
        st.status = "stopped"
        self._cgroup().destroy()
        self.store.remove(self.id)
        from pyoci import hooks

        hooks.run("poststop", _hooks_from(st.hooks.get("poststop", [])), st.oci())

    def _kill_everything(self, st: State) -> None:
        """SIGKILL the init and wait for it; and every process in the container's cgroup when the init may
        not take them with it: no pid namespace of its own, or a runtime that died before recording the
        init (as runc does for the first)."""
        cg = self._cgroup()
        whole = not st.own_pid_ns or not st.pid_start or st.status == "creating"

        def alive() -> bool:
            init = bool(st.pid) and proc_start_time(st.pid) == st.pid_start
            return init or (whole and any(proc_start_time(p) is not None for p in cg.pids()))

        deadline = time.monotonic() + 10
        while alive():
            if time.monotonic() > deadline:
                raise ContainerError("container %s: processes still alive 10 s after SIGKILL (%s)"
                                     % (self.id, " ".join(map(str, cg.pids())) or st.pid))
            if whole:
                cg.signal_all(SIGKILL)
            if st.pid:
                try:
                    _signal_pid(st.pid, st.pid_start, SIGKILL)
                except PyociError:
                    pass
            if cg.frozen():  # paused: the SIGKILL is pending, it lands once thawed
                cg.freeze(False)
            time.sleep(0.005)

    def _cgroup(self) -> Any:
        return self._cgroup_of(self._state)

    @staticmethod
    def _cgroup_of(st: State) -> Any:
        from pyoci.cgroups import Cgroup

        return Cgroup.from_record(st.cgroup_paths)

    # --- pause / resume / ps / update (runc's commands beyond the spec) -------------------------------
    def pause(self) -> None:
        """Freeze every process of the container (the cgroup freezer)."""
        self._locked_op(("running",), "pause", lambda cg: cg.freeze(True))

    def resume(self) -> None:
        self._locked_op(("paused",), "resume", lambda cg: cg.freeze(False))

    def processes(self) -> Sequence[int]:
        """Host pids of the container's processes."""
        self.refresh()
        return sorted(self._cgroup().pids())

    def update(self, resources: dict[str, Any]) -> None:
        """New linux.resources for a live container (only the fields given change; devices when given)."""
        self._locked_op(("created", "running", "paused"), "update", lambda cg: cg.apply(resources, update=True))

    def _locked_op(self, allowed: tuple[str, ...], what: str, op: Any) -> None:
        lock = self.store.lock(self.id)
        try:
            st = self.refresh()
            if st.status not in allowed:
                raise InvalidState("container %r is %s: cannot %s it" % (self.id, st.status, what))
            op(self._cgroup())
        finally:
            os.close(lock)

    # --- exec ----------------------------------------------------------------------------------------
    def exec(self, proc: Any, **options: Any) -> int:
        """Run another process in the container (see pyoci.execute.exec_in for the options)."""
        from pyoci.execute import exec_in

        return exec_in(self, proc, **options)


def _check_supported(spec: Any) -> None:
    """Refuse what would silently weaken the container rather than ignore it."""
    from pyoci.errors import ConfigError, NotSupported

    if spec.process is None:
        raise ConfigError("process: required by create")
    mount_ns = spec.linux.namespace("mount")
    if mount_ns is not None and mount_ns.path:
        raise ConfigError("linux.namespaces: joining a mount namespace by path is not supported: the rootfs set-up "
                          "would move every process in it")
    if mount_ns is None:
        # the container shares the runtime's mount namespace (config-linux.md#namespaces) and gets a chroot;
        # runc would make every mount below in the host's namespace and leave it there: refuse instead
        needs = [name for name, wanted in (
            ("mounts", spec.mounts), ("linux.maskedPaths", spec.linux.masked_paths),
            ("linux.readonlyPaths", spec.linux.readonly_paths), ("root.readonly", spec.root_readonly),
            ("linux.devices", spec.linux.devices), ("linux.rootfsPropagation", spec.linux.rootfs_propagation),
            ("process.terminal", spec.process.terminal)) if wanted]
        if needs:
            raise ConfigError("linux.namespaces: %s need a mount namespace of the container's own (without one, "
                              "pyoci would have to mount in the host's)" % ", ".join(needs))
        caps = spec.process.capabilities
        risky = [c for c in ("CAP_SYS_CHROOT", "CAP_SYS_ADMIN") if caps is not None and c in caps.bounding]
        if risky:
            raise ConfigError("linux.namespaces: without a mount namespace the container only gets a chroot, which "
                              "%s can escape: drop it from process.capabilities.bounding" % " and ".join(risky))
    from pyoci.process import refuse_labels

    refuse_labels(spec.process, spec.raw.get("linux", {}).get("mountLabel"))
    if spec.linux.net_devices:
        from pyoci import netdev

        netdev.check(spec.linux.net_devices, spec.linux.namespace("network") is not None)
    if spec.linux.intel_rdt is not None:
        raise NotSupported("linux.intelRdt: %s" % (
            "this host has no resctrl filesystem (Intel RDT / AMD QoS not enabled)"
            if not os.path.isdir("/sys/fs/resctrl/info") else "resctrl groups are not managed by pyoci yet"))
    if spec.linux.seccomp is not None:
        from pyoci import seccomp

        seccomp.check(spec.linux.seccomp)  # every translation error now, before anything is created


def _hooks_inside(config: dict[str, Any], st: State, start_hooks: list[Any]) -> None:
    """startContainer hooks, in the container's namespaces: run by a child of ours that joins the init's (the
    pid namespace for its children only), so no Python process ever enters the container (CVE-2019-5736)."""
    from pyoci import bootstrap, jsonio, namespaces, spec as specmod

    linux = specmod.parse(config, st.bundle).linux
    linux.namespaces = namespaces.of_process(linux, st.pid)
    plan = namespaces.Plan(linux)
    state = dict(st.oci(), pid=st.pid)
    bootstrap.preload_hooks()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            import prctl

            prctl.set_pdeathsig(SIGKILL)
            plan.join_user()
            plan.join_others()
            plan.close()
            from pyoci import hooks

            env = bootstrap.environment(specmod.parse_process(config["process"])) if config.get("process") else []
            hooks.run("startContainer", start_hooks, state, env=env)
        except BaseException as e:  # noqa: BLE001
            bootstrap.fail(w, e)
        os._exit(0)
    os.close(w)
    plan.close()
    with open(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if data:
        raise bootstrap.error_from(jsonio.loads(data))


def _signal_pid(pid: int, start: int, sig: int) -> None:
    """Through a pidfd checked against the start time: a recycled pid is never signalled."""
    import _signal

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise InvalidState("container process %d has exited: container not running" % pid) from None
    try:
        if proc_start_time(pid) != start:
            raise InvalidState("container process %d has exited: container not running" % pid)
        _signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        raise InvalidState("container process %d has exited: container not running" % pid) from None
    finally:
        os.close(fd)


def write_pid_file(path: str, pid: int) -> None:
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.replace(tmp, path)
    except OSError as e:
        raise ContainerError("--pid-file %s: %s" % (path, e.strerror)) from None


class _Builder:
    """The runtime side of create: cgroup, fork, id maps, hooks, and a clean abort at any step."""

    def __init__(self, store: Store, st: State, spec: Any, state_dir: str) -> None:
        self.store, self.st, self.spec, self.state_dir = store, st, spec, state_dir
        self.cgroup: Any = None
        self.children: list[int] = []
        self.release = -1

    def build(self, console_path: str | None, console: socket.socket | None, preserve_fds: int, no_pivot: bool,
              no_new_keyring: bool, systemd: bool, lock: int, subreaper: bool = False,
              preserved: Sequence[int] | None = None) -> None:
        from pyoci.cgroups import Cgroup, start_migration_wait

        spec, st = self.spec, self.st
        self.cgroup = cg = Cgroup.for_container(spec.linux.cgroups_path, st.id, systemd, spec.annotations)
        cg.created = cg.missing()
        st.cgroup_paths = cg.record()
        self.store.save(st)  # before the first mkdir or unit: a runtime killed from now on leaves what delete finds
        unit = cg.unit is not None
        warm = None
        if unit:  # systemd makes the cgroup once the init exists: checked now, written then
            planned = cg.plan(spec.linux.resources)
        else:
            cg.create()
            warm = start_migration_wait()  # now: the wait holds cgroup_mutex, which mkdir needs too
            if warm is not None:
                self.children.append(warm)
            if cg.frozen():  # the init would freeze in it and create would never end
                raise ContainerError("linux.cgroupsPath %r: the cgroup %s is frozen" % (
                    spec.linux.cgroups_path, next(iter(cg.paths.values()), "")))
            cg.apply(spec.linux.resources)
        # one cgroup v2 directory: stage 1 forks the init straight into it (clone3); else a migration, which
        # the child started above makes cheap
        into = not unit and list(cg.paths) == [""]
        cgroup_fd: int | None = None
        import _socket as socket  # socket.py's enums and selectors cost ~2 ms per container

        from pyoci import bootstrap, console as consolemod, hooks, namespaces
        plan = namespaces.Plan(spec.linux)
        bootstrap.preload(spec)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        linger, self.release = os.pipe()  # stage 1 lives until we close release (or die)
        if console_path is not None:
            console = consolemod.connect(console_path)
        try:
            with _DirFd(self.state_dir) as d:
                listener.bind(d.path(EXEC_SOCKET))
            listener.listen(1)
            if into:
                cgroup_fd = os.open(cg.paths[""], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            launch = bootstrap.Launch(spec=spec, sync=child, exec_listener=listener, namespaces=plan,
                                      cgroup_paths=self.cgroup.paths, console=console, preserve_fds=preserve_fds,
                                      no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                                      extra={"close": [lock, self.release], "id": st.id, "linger": linger,
                                             "parent": os.getpid(),
                                             "dmz": bootstrap.load_dmz(), "preserved": list(preserved or []),
                                             "cgroup_fd": cgroup_fd, "await_cgroup": unit,
                                             "proxied": console_path is None})
            if subreaper:
                import prctl

                prctl.set_child_subreaper(True)
            pid = os.fork()
            if pid == 0:
                parent.close()
                bootstrap.stage1(launch)
            self.children.append(pid)
            os.close(linger)
            if cgroup_fd is not None:
                os.close(cgroup_fd)
                cgroup_fd = None
            child.close()
            listener.close()
            if console is not None:
                console.close()
            plan.close()
            bootstrap.send(parent, "go")
            msg = bootstrap.recv(parent)
            if msg["type"] == "userns":
                namespaces.write_id_maps(pid, spec.linux.uid_mappings, spec.linux.gid_mappings)
                bootstrap.send(parent, "mapped")
                msg = bootstrap.recv(parent)
            # stage 1 reports the init's pid and exits, the init reports "hooks" when its mounts are done:
            # the two race, so take them in either order
            init_pid, mounted, placed = 0, False, False
            while True:
                if msg["type"] == "init":
                    init_pid = msg["pid"]
                    self.children.append(init_pid)
                    st.pid, st.pid_start = init_pid, proc_start_time(init_pid) or 0
                    self.store.save(st)  # before anything can be waiting for start: delete --force finds it
                    # placed while the init mounts its rootfs; the init unshares its cgroup namespace and runs
                    # no container code before it reads "hooks-done"
                    placed = bool(msg.get("placed"))
                    if unit:  # the init waits for its cgroup before it mounts anything (cgroup mounts need it)
                        cg.start(init_pid, planned, self._save_cgroup)
                        bootstrap.send(parent, "cgroup", paths=cg.paths)
                    elif not placed:
                        self.cgroup.add(init_pid)
                    if warm is not None:
                        os.waitpid(warm, 0)
                        self.children.remove(warm)
                elif msg["type"] == "hooks":
                    mounted = True
                else:
                    raise ContainerError("set-up protocol: unexpected %r" % msg["type"])
                if init_pid and mounted:
                    break
                msg = bootstrap.recv(parent)
            if spec.linux.net_devices:  # into the init's network namespace before any hook runs, as runc
                from pyoci import netdev

                netdev.move(spec.linux.net_devices, init_pid)
            creating = st.oci()
            creating["pid"] = init_pid
            hooks.run("prestart", spec.hooks["prestart"], creating)
            hooks.run("createRuntime", spec.hooks["createRuntime"], creating)
            bootstrap.send(parent, "hooks-done", pid=init_pid)
            bootstrap.recv_past_listener(parent, "ready", bootstrap.to_agent(spec.linux.seccomp, init_pid, creating),
                                         hooks.deadline(spec.hooks["createContainer"], bootstrap.SETUP_TIMEOUT))
            st.status = "created"
            self.store.save(st)
            os.close(self.release)
            self.release = -1
            os.waitpid(pid, 0)  # stage 1 ends
            self.children.remove(pid)
            log.debug("container %s created: init pid %d, cgroup %s (%s)" % (
                st.id, init_pid, next(iter(self.cgroup.paths.values()), "-"),
                "systemd unit " + cg.unit if unit else "born in it: clone3" if placed else "moved in"))
        finally:
            parent.close()
            plan.close()
            if self.release >= 0:
                os.close(self.release)
            if cgroup_fd is not None:
                os.close(cgroup_fd)

    def _save_cgroup(self) -> None:
        self.st.cgroup_paths = self.cgroup.record()
        self.store.save(self.st)

    def abort(self) -> bool:
        """Kill whatever was started, reap it, remove the cgroup. False: something is left for delete."""
        for pid in self.children:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                _wait_gone(pid)
        if self.cgroup is not None:
            self.cgroup.signal_all(SIGKILL)
            try:
                self.cgroup.destroy()
            except PyociError as e:
                log.warning(str(e))
                return False
        return True


class _DirFd:
    """A directory opened by fd, so a unix socket in it has a short name whatever the id's length
    (sun_path holds 108 bytes; runc accepts longer ids)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def path(self, name: str) -> str:
        return "/proc/self/fd/%d/%s" % (self.fd, name)

    def __enter__(self) -> _DirFd:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while proc_start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.002)
