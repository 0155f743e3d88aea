"""What runs in the processes the runtime forks: the namespace stage and the container's init.

Stage 1 (a fork of the runtime) joins and creates namespaces, then forks the init, which becomes pid 1 of a
new pid namespace, prepares the rootfs, drops to the container's credentials, reports ``ready`` and execs
pyoci-dmz from a sealed memfd: that waits for ``start`` on the exec socket and execs ``process.args``. For
``exec``, stage 1 does the set-up itself, outside the pid namespace, and pyoci-dmz forks the process into
it: no process a container can see is ever the host's interpreter (CVE-2019-5736).
Runtime and children talk over a SOCK_SEQPACKET pair with one JSON message per packet.
"""
from __future__ import annotations

import os
import _signal as signal  # the C module: signal.py's enums cost ~1 ms per container
import _socket as socket  # the C module: socket.py's enums and selectors cost ~2 ms per container

from pyoci import fdpass, jsonio
from pyoci.errors import ContainerError, PyociError
from pyoci.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

    from pyoci.spec import Spec


class Launch(Record):
    """Everything the children need, decided by the runtime before the fork."""

    spec: Spec
    sync: socket.socket
    exec_listener: socket.socket
    namespaces: Any  # namespaces.Plan
    cgroup_paths: dict[str, str]
    console: socket.socket | None = None
    preserve_fds: int = 0
    no_pivot: bool = False
    no_new_keyring: bool = False
    extra: dict[str, Any] = {}


def send(sock: socket.socket, kind: str, **data: Any) -> None:
    data["type"] = kind
    sock.send(jsonio.dumps(data).encode())


def send_listener(target: socket.socket | int, notify_fd: int) -> None:
    """The seccomp notification fd to the runtime ({"type": "seccomp"} with it as SCM_RIGHTS), then closed
    here: the container's processes must never hold the fd that answers their own system calls."""
    sock = target if not isinstance(target, int) else socket.socket(
        socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, os.dup(target))
    try:
        fdpass.send_fd(sock, notify_fd, b'{"type": "seccomp"}')
    finally:
        os.close(notify_fd)
        if sock is not target:
            sock.close()


# how long the runtime waits for one answer of its children (hooks running meanwhile add their timeouts)
SETUP_TIMEOUT = 60.0


def recv(sock: socket.socket, expect: str | None = None, timeout: float | None = SETUP_TIMEOUT) -> dict[str, Any]:
    """The next message; the runtime's waits end after timeout (None: the config allows no bound)."""
    sock.settimeout(timeout)
    try:
        raw, fd = fdpass.recv_with_fd(sock, 1 << 20, socket.MSG_CMSG_CLOEXEC)
    except TimeoutError:
        raise ContainerError("the container's set-up gave no answer %s within %d s" % (
            "(%s)" % expect if expect else "", timeout or 0)) from None
    if not raw:
        raise ContainerError("the other side of the set-up channel went away")
    msg: dict[str, Any] = jsonio.loads(raw)
    if fd is not None:  # send_listener's
        msg["fd"] = fd
    if msg["type"] == "error":
        raise error_from(msg)
    if expect and msg["type"] != expect:
        raise ContainerError("set-up protocol: expected %r, got %r" % (expect, msg["type"]))
    return msg


def recv_past_listener(sock: socket.socket, expect: str, on_listener: Callable[[int], None],
                       timeout: float | None = SETUP_TIMEOUT) -> dict[str, Any]:
    """The next message, which must be of kind expect; a seccomp notification fd a child sends before it
    (send_listener) goes to on_listener at once, which owns it: the child's next system calls may already
    wait for the agent that fd is for."""
    msg = recv(sock, None, timeout)
    if msg["type"] == "seccomp":
        fd = msg.get("fd")
        if fd is None:
            raise ContainerError("set-up protocol: a seccomp message without its fd")
        on_listener(fd)
        msg = recv(sock, None, timeout)
    if msg["type"] != expect:
        raise ContainerError("set-up protocol: expected %r, got %r" % (expect, msg["type"]))
    return msg


def to_agent(seccomp: dict[str, Any] | None, pid: int, state: dict[str, Any]) -> Callable[[int], None]:
    """recv_past_listener's on_listener: the fd to the seccomp agent at listenerPath, with pid and state."""
    def send(fd: int) -> None:
        from pyoci.seccomp import send_to_agent

        send_to_agent(seccomp or {}, fd, pid, state)

    return send


def error_from(msg: dict[str, Any]) -> PyociError:
    """The exception a child reported with fail()."""
    from pyoci import errors

    cls = getattr(errors, msg.get("cls", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, PyociError)):
        cls = ContainerError
    return cls(msg["message"])  # type: ignore[no-any-return]


def fail(sock: socket.socket | int, e: BaseException) -> NoReturn:
    """Report e to the runtime as one error message (over a socket object or a raw fd) and exit."""
    if isinstance(e, PyociError):
        msg = {"message": str(e), "cls": type(e).__name__}
    elif isinstance(e, OSError):
        msg = {"message": "%s%s" % (e.strerror or e, (": " + str(e.filename)) if e.filename else "")}
    else:
        msg = {"message": "%s: %s" % (type(e).__name__, e)}
    msg["type"] = "error"
    try:
        data = jsonio.dumps(msg).encode()
        if isinstance(sock, int):
            os.write(sock, data)
        else:
            sock.send(data)
    except OSError:
        pass
    os._exit(1)


def stage1(launch: Launch) -> NoReturn:
    """Join, then create namespaces; fork the init and report its pid. Never returns."""
    sock = launch.sync
    try:
        import prctl

        for fd in launch.extra.get("close", ()):  # the store's flock must not outlive the runtime
            os.close(fd)
        _die_with_runtime(launch)
        # a host interpreter inside the container's namespaces: no ptrace, no /proc/PID/exe (CVE-2019-5736)
        prctl.set_dumpable(False)
        recv(sock, "go")
        plan = launch.namespaces
        if "mount" in plan.new and not launch.extra.get("exec"):  # what only the host's root can open or map
            from pyoci.rootfs import detach_sources

            user = launch.spec.linux.namespace("user")
            launch.extra["sources"] = detach_sources(launch.spec, user is not None, user.path if user else "")
        plan.join_user()
        if "user" in plan.new:
            from pyoci import syscalls
            from pyoci.syscalls import C

            syscalls.unshare(C.CLONE_NEWUSER)
            send(sock, "userns")
            recv(sock, "mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            _die_with_runtime(launch)  # a change of credentials clears the parent-death signal
            # /proc/self/* must stay ours to write (time offsets here, oom_score_adj in the init, which turns
            # dumpable off again at once); nothing of the container runs yet
            prctl.set_dumpable(True)
        plan.join_others()
        plan.close()  # joined: the fds must not reach the container (--preserve-fds marks 3.. inheritable)
        flags = plan.unshare_flags()
        if flags:
            from pyoci import syscalls

            syscalls.unshare(flags)
        if "network" in plan.new:
            from pyoci.namespaces import loopback_up

            loopback_up()
        if "time" in plan.new:
            from pyoci.namespaces import write_time_offsets

            write_time_offsets(launch.spec.linux.time_offsets)
        if launch.extra.get("exec"):
            exec_child(launch)  # forks into the pid namespace only as pyoci-dmz
        pid, placed = fork_into(launch.extra.get("cgroup_fd"))
        if pid == 0:
            init(launch)
        send(sock, "init", pid=pid, placed=placed)
        linger = launch.extra.get("linger")
        if linger is not None:  # until create is done: the init, its parent-death signal on us, dies with us
            sock.close()
            os.read(linger, 1)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything must reach the runtime as one line
        fail(sock, e)


# what a created container's init catches (and exits on): pid 1 ignores signals it has no handler for
_CATCH = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


def _die_with_runtime(launch: Launch) -> None:
    """SIGKILL when our parent dies; if it already has, exit. Stage 1 dies with the runtime, the init and its
    createContainer hooks with stage 1, which lingers until create is done (extra["linger"])."""
    import prctl

    prctl.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != launch.extra.get("parent", os.getppid()):
        os._exit(1)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    os._exit(128 + signum)


def fork_into(cgroup_fd: int | None) -> tuple[int, bool]:
    """(pid, placed): fork (create's init, exec's stage), the child born in the cgroup v2 directory cgroup_fd
    where there is one and the kernel has clone3(CLONE_INTO_CGROUP) (5.7+: no migration to do afterwards, so
    none of the kernel's wait for a grace period that a first migration after a quiet spell makes), else
    os.fork(). The child closes cgroup_fd; the parent keeps it."""
    if cgroup_fd is not None:
        from pyoci import syscalls

        try:
            pid = syscalls.fork_into_cgroup(cgroup_fd)
        except OSError:  # ENOSYS, E2BIG: an older kernel; EPERM, EACCES: let the runtime's migration say why
            pid = -1
        if pid == 0:
            os.close(cgroup_fd)
        if pid >= 0:
            return pid, True
    return os.fork(), False


def init(launch: Launch) -> NoReturn:
    """The container's first process until exec."""
    sock = launch.sync
    try:
        import prctl

        if launch.extra.get("linger") is not None:
            os.close(launch.extra["linger"])
            # no check of getppid (0 in a new pid namespace): had stage 1 died already, so has the runtime,
            # and the next recv ends us
            prctl.set_pdeathsig(signal.SIGKILL)
        else:
            prctl.set_pdeathsig(0)
        proc = launch.spec.process
        if proc is not None and proc.oom_score_adj is not None:
            try:
                with open("/proc/self/oom_score_adj", "w") as f:  # before dumpable 0 makes /proc/self root's
                    f.write(str(proc.oom_score_adj))
            except OSError as e:
                raise ContainerError("process.oomScoreAdj: cannot set %d: %s" % (proc.oom_score_adj, e.strerror)) from None
        prctl.set_dumpable(False)  # nothing in the container may ptrace or open /proc/1/* of the runtime
        _setup(launch)
    except BaseException as e:  # noqa: BLE001
        fail(sock, e)
    _become(launch, sock, "wait")


def preload(spec: Spec) -> None:
    """Import, in the runtime before it forks, all the children will need: after pivot_root, or as an
    unprivileged host uid in a user namespace, the interpreter's files are out of reach."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import termios  # noqa: F401

    import prctl  # noqa: F401

    from pyoci import console, devices, hooks, namespaces, process, rootfs, syscalls  # noqa: F401

    process.runtime_bounding()  # read from the host's /proc, now (last_cap too)

    if spec.hooks["createContainer"]:
        preload_hooks()
    if spec.linux.seccomp is not None:
        from pyoci import seccomp  # noqa: F401  (loads libseccomp.so)


def preload_hooks() -> None:
    """What running a hook imports, for a process about to lose the host's files (setns or pivot_root)."""
    import subprocess  # noqa: F401

    import prctl  # noqa: F401

    from pyoci import hooks  # noqa: F401


def load_dmz() -> bytes:
    """The static exec helper's bytes, read while the host's files are still reachable. Found next to this
    file's real path: the strict editable install's link tree holds only what setuptools built."""
    path = os.path.join(os.path.dirname(os.path.realpath(__file__)), "_dmz")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ContainerError("%s: %s (pyoci was installed without its exec helper; reinstall it)"
                             % (path, e.strerror)) from None


def _sealed_dmz(dmz: bytes) -> int:
    """A sealed memfd copy of pyoci-dmz. Exec'ing process.args through it means that while that exec
    runs, /proc/self/exe is this sealed copy, never the host's Python interpreter, so it cannot be
    overwritten from the container (CVE-2019-5736). Made before any seccomp filter is loaded."""
    import fcntl

    fd = os.memfd_create("pyoci-dmz", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(dmz)
    while view:
        view = view[os.write(fd, view):]
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_WRITE)
    return fd


def _above(fd: int, low: int) -> int:
    """fd itself if >= low, else a close-on-exec duplicate >= low (the original is closed)."""
    if fd >= low:
        return fd
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    os.close(fd)
    return new


def _exec_dmz(dmz_fd: int, argv: list[str], env: dict[str, str]) -> None:
    try:
        os.execve(dmz_fd, argv, env)  # execveat(AT_EMPTY_PATH)
    except PermissionError:
        os.execve("/proc/self/fd/%d" % dmz_fd, argv, env)  # a profile may allow execve but not execveat


def _setup(launch: Launch) -> None:
    from pyoci import devices, rootfs

    spec, sock = launch.spec, launch.sync
    plan = launch.namespaces
    userns = plan.has("user")
    own_mounts = "mount" in plan.new  # without a mount namespace of its own, the container only gets a chroot
    rootfd = -1
    if launch.extra.get("await_cgroup"):  # systemd's unit: it exists once systemd has put us in it
        launch.cgroup_paths = recv(sock, "cgroup")["paths"]
    if own_mounts:
        rootfd = rootfs.prepare(spec)
        devices.check_dev_in_root(rootfd)
        mounter = rootfs.Mounter(spec, rootfd, userns, launch.cgroup_paths, launch.extra.pop("sources", None))
        mounter.mount_all()
        devices.create_devices(spec, rootfd, userns)
        mounter.finish()
    send(sock, "hooks")
    pid = recv(sock, "hooks-done")["pid"]  # also: the runtime has put us in our cgroup
    # the state is built here, not sent: annotations may be larger than one message can carry
    from pyoci.state import State

    state = dict(State(id=launch.extra.get("id", ""), bundle=spec.bundle, annotations=spec.annotations).oci(),
                 pid=pid)
    if "cgroup" in plan.new:
        from pyoci import syscalls
        from pyoci.namespaces import clone_flag

        syscalls.unshare(clone_flag("cgroup"))
    from pyoci import hooks

    hooks.run("createContainer", spec.hooks["createContainer"], state, cwd=spec.root_path if own_mounts else None)
    if spec.linux.sysctl:
        rootfs.write_sysctls(spec.linux.sysctl)
    proc = spec.process
    if not launch.no_new_keyring:
        _new_keyring(launch.extra.get("id", ""))
    if own_mounts:
        rootfs.mask_paths(rootfd, spec.linux.masked_paths, spec.linux.readonly_paths)
        os.close(rootfd)
        rootfs.pivot(spec.root_path, launch.no_pivot)
        rootfs.apply_root_propagation(spec)
        if spec.root_readonly:
            rootfs.remount_root_readonly()
    else:
        os.chroot(spec.root_path)
        os.chdir("/")
    from pyoci import syscalls

    if spec.hostname is not None and plan.has("uts"):
        syscalls.sethostname(spec.hostname)
    if spec.domainname is not None and plan.has("uts"):
        syscalls.setdomainname(spec.domainname)
    if proc is None:
        raise ContainerError("process: required to create a container")
    _prepare_process(launch, proc)
    for sig in _CATCH:
        signal.signal(sig, _exit_on_signal)  # pid 1 ignores unhandled signals: let kill work while created


def _prepare_process(launch: Launch, proc: Any) -> None:
    """Inside the container, still privileged: terminal, cwd, args[0] in PATH, environment, rlimits,
    scheduling, memory policy, CPU affinity."""
    from pyoci import process

    if proc.terminal:
        _terminal(launch)
    _chdir(proc.cwd, create=not launch.extra.get("exec"))
    launch.extra["exe"] = _executable(proc)
    launch.extra["env"] = environment(proc)
    process.set_rlimits(proc)
    process.set_scheduling(proc)
    process.set_memory_policy(launch.spec.linux.memory_policy)
    if launch.extra.get("exec"):  # execCPUAffinity is not for the container's init (config.md)
        process.set_final_affinity(proc)


def _new_keyring(cid: str) -> None:
    import errno

    from pyoci import syscalls

    try:
        syscalls.join_session_keyring("_ses." + cid if cid else "_ses")
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EDQUOT):  # no keyrings here, or the user's quota is full
            raise ContainerError("cannot create a session keyring: %s (use --no-new-keyring)" % e.strerror) from None


def _terminal(launch: Launch) -> None:
    from pyoci import console, rootfs, syscalls
    from pyoci.syscalls import C

    if launch.console is None:
        raise ContainerError("process.terminal is true but no console socket was given (--console-socket)")
    master, slave, _name = console.open_pty()
    proc = launch.spec.process
    assert proc is not None
    if proc.console_size:
        console.set_size(master, proc.console_size[0], proc.console_size[1])
    console.own_slave(slave, proc.user.uid)
    if launch.extra.get("proxied"):  # our own stdio proxy (foreground run/exec): "\n" stays "\n", as with runc
        console.clear_onlcr(slave)
    if not launch.extra.get("exec"):  # the container's /dev/console is its init's terminal
        try:
            root = os.open("/", rootfs.O_PATH | os.O_DIRECTORY)
            fd = rootfs.ensure_file(root, "/dev/console", nofollow=True)
            os.close(root)
            syscalls.mount(rootfs.fdpath(slave), rootfs.fdpath(fd), None, C.MS_BIND)
            os.close(fd)
        except OSError:
            pass  # no writable /dev: the pty still works as stdio
    console.send_fd(launch.console, master)
    os.close(master)
    launch.console.close()
    console.make_controlling(slave, session=not launch.extra.get("exec"))  # exec: pyoci-dmz's child does it
    os.close(slave)


def _chdir(cwd: str, create: bool = True) -> None:
    """Into process.cwd, made if missing for the container's process (as runc does), not for exec."""
    try:
        os.chdir(cwd)
    except FileNotFoundError:
        if not create:
            raise ContainerError("process.cwd %s: no such directory in the container" % cwd) from None
        try:
            os.makedirs(cwd, 0o755)
            os.chdir(cwd)
        except OSError as e:
            raise ContainerError("process.cwd %s: %s" % (cwd, e.strerror)) from None
    except OSError as e:
        raise ContainerError("process.cwd %s: %s" % (cwd, e.strerror)) from None
    try:  # cwd must be inside the container (CVE-2024-21626): the kernel says "(unreachable)" otherwise
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise ContainerError("process.cwd %s: resolved outside the container" % cwd)


def _executable(proc: Any) -> str:
    from pyoci.process import find_executable

    if not proc.args:
        raise ContainerError("process.args: must not be empty")
    return find_executable(proc)


def environment(proc: Any) -> list[str]:
    """process.env, plus HOME from the container's /etc/passwd when unset or empty (as runc does)."""
    env = list(proc.env)
    if not any(e.startswith("HOME=") and e != "HOME=" for e in env):
        env = [e for e in env if e != "HOME="]
        home = "/"
        try:
            with open("/etc/passwd") as f:
                for line in f:
                    parts = line.rstrip("\n").split(":")
                    if len(parts) >= 6 and parts[2] == str(proc.user.uid):
                        home = parts[5] or "/"
                        break
        except OSError:
            pass
        env.append("HOME=" + home)
    return env


def _become(launch: Launch, sock: socket.socket, mode: str) -> NoReturn:
    """Drop to the configured user and capabilities, close every other fd, exec pyoci-dmz from a sealed memfd.

    mode "wait" (the init of create): report "ready" on sock, then pyoci-dmz waits for `start` on the exec
    listener and execs process.args (runc's order: the credentials are the container's while it waits).
    mode "spawn" (`exec`, in stage 1 outside the pid namespace): pyoci-dmz forks the process into it.
    The fd pyoci-dmz reports a failed exec on is close-on-exec: its EOF tells the runtime the exec succeeded."""
    from pyoci import process

    proc = launch.spec.process
    assert proc is not None
    wait = mode == "wait"
    if launch.spec.linux.personality:
        from pyoci import syscalls
        from pyoci.syscalls import C

        syscalls.personality(C.PER_LINUX32 if launch.spec.linux.personality == "LINUX32" else C.PER_LINUX)
    first_free = 3 + launch.preserve_fds  # our own fds must stay clear of those we hand over
    fd = _above((launch.exec_listener if wait else sock).detach(), first_free)
    report: socket.socket | int = sock if wait else fd
    try:
        dmz = _above(_sealed_dmz(launch.extra["dmz"]), first_free)
        process.close_fds({fd, dmz} | ({sock.fileno()} if wait else set()), launch.extra.get("preserved", []))
        # seccomp: without no_new_privs, loading needs CAP_SYS_ADMIN, so before the capabilities go (runc's
        # order); with it, as late as possible. Either way after the fds are closed and the memfd is made.
        seccomp = launch.spec.linux.seccomp
        if seccomp is not None and not proc.no_new_privileges:
            _load_seccomp(seccomp, sock if wait else fd)
            seccomp = None
        process.drop_bounding(proc.capabilities)
        process.set_user(proc)
        if proc.user.umask is None:
            os.umask(0o022)
        process.set_capabilities(proc.capabilities)
        process.no_new_privileges(proc)
        process.reset_signals()
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in launch.extra["env"])
        if seccomp is not None:
            _load_seccomp(seccomp, sock if wait else fd)
        os.set_inheritable(fd, True)  # pyoci-dmz reports a failed exec on it, then marks it close-on-exec
        argv0 = "pyoci-dmz-wait" if wait else "pyoci-dmz-spawn-tty" if proc.terminal else "pyoci-dmz-spawn"
        if wait:
            import prctl

            prctl.set_pdeathsig(0)  # created: the init outlives stage 1 and the runtime from now on
            send(sock, "ready")
            sock.close()
            report = -1
        _exec_dmz(dmz, [argv0, str(fd), launch.extra["exe"]] + list(proc.args), env)
    except OSError as e:
        if report == -1:
            os._exit(127)
        fail(report, ContainerError("exec %s: %s" % (proc.args[0], e.strerror or e)))
    except BaseException as e:  # noqa: BLE001 - the runtime must hear about it, the fd is all we have
        if report == -1:
            os._exit(127)
        fail(report, e)
    os._exit(127)


def _load_seccomp(seccomp: dict[str, Any], runtime: socket.socket | int) -> None:
    from pyoci.seccomp import load_filter

    notify = load_filter(seccomp)
    if notify is not None:  # SCMP_ACT_NOTIFY: the runtime sends it to the agent
        send_listener(runtime, notify)


def exec_child(launch: Launch) -> NoReturn:
    """`pyoci exec`, in stage 1: joined the container's namespaces (the pid namespace for its children only),
    set up the process and exec pyoci-dmz, which forks it into the container: no Python there, ever."""
    sock = launch.sync
    try:
        proc = launch.spec.process
        assert proc is not None
        _prepare_process(launch, proc)
        _become(launch, sock, "spawn")
    except BaseException as e:  # noqa: BLE001
        fail(sock, e)
