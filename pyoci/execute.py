"""`exec`: run another process in a created or running container (runc exec).

The process is built like runc builds it: from --process FILE, or from the container's own process with
the command line's overrides. A forked stage joins the container's cgroup and namespaces, sets the process up
and execs pyoci-dmz, which forks it into the pid namespace; the runtime waits for it unless --detach.
"""
from __future__ import annotations

import os

from pyoci.errors import ConfigError, InvalidState, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.spec import Process, Spec


def build_process(config: dict[str, Any], *, process_file: str | None = None, args: list[str] | None = None,
                  cwd: str | None = None, env: list[str] | None = None, tty: bool = False, user: str | None = None,
                  additional_gids: list[int] | None = None, caps: list[str] | None = None,
                  no_new_privs: bool = False) -> Process:
    """The exec'd process: --process FILE as given, or the container's process with overrides (runc's rules)."""
    from pyoci import spec as specmod

    if process_file:
        from pyoci import validate

        raw, problems = validate.load_json(process_file, pipe=True)
        if problems:
            raise ConfigError("--process: %s" % problems[0])
        if not isinstance(raw, dict):
            raise ConfigError("--process %s: must be a JSON object" % process_file)
        return specmod.parse_process(raw)
    if not args:
        raise UsageError("exec: a command is required (or --process FILE)")
    base = dict(config.get("process") or {"cwd": "/"})
    base["args"] = list(args)
    base["terminal"] = tty
    base.pop("consoleSize", None)
    if cwd:
        base["cwd"] = cwd
    if env:
        merged = {e.split("=", 1)[0]: e for e in base.get("env") or []}
        merged.update((e.split("=", 1)[0], e) for e in env)
        base["env"] = list(merged.values())
    if user is not None or additional_gids:
        u = dict(base.get("user") or {})
        if user is not None:
            uid, _, gid = user.partition(":")
            try:
                u["uid"] = int(uid)
                if gid:
                    u["gid"] = int(gid)
            except ValueError:
                raise UsageError("--user %r: expected UID[:GID] (numbers)" % user) from None
        if additional_gids:
            u["additionalGids"] = list(additional_gids)
        base["user"] = u
    if caps:
        c = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for name in caps:
            name = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
            for kind in ("bounding", "effective", "permitted", "ambient"):  # runc's sets (ambient needs inheritable)
                if name not in c.setdefault(kind, []):
                    c[kind].append(name)
        base["capabilities"] = c
    if no_new_privs:
        base["noNewPrivileges"] = True
    return specmod.parse_process(base)


def exec_in(container: Any, proc: Process, *, detach: bool = False, pid_file: str | None = None,
            console_socket: str | None = None, preserve_fds: int = 0, ignore_paused: bool = False,
            config: dict[str, Any] | None = None, cgroups: list[str] | None = None,
            pidfd_socket: str | None = None) -> int:
    """Start proc in the container; returns its exit code (128+N on signal N), or 0 when detached.
    config: the container's saved config.json when the caller has already read it; cgroups: sub-cgroups to
    run it in (`exec --cgroup`, see Cgroup.sub); pidfd_socket: a unix socket that gets a pidfd of the process."""
    import _socket as socket

    from pyoci import bootstrap, console as consolemod, namespaces, spec as specmod
    from pyoci.container import write_pid_file
    from pyoci.errors import ContainerError
    from pyoci.run import Forwarder, TtyProxy, wait_for

    from pyoci.process import open_fds

    preserved = open_fds(3, preserve_fds)  # before we open anything ourselves
    st = container.refresh()
    if st.status not in ("created", "running") + (("paused",) if ignore_paused else ()):
        if st.status == "paused":  # runc's words, which tools match
            raise InvalidState("container %r: cannot exec in a paused container (use --ignore-paused to "
                               "override)" % container.id)
        raise InvalidState("container %r is %s: cannot exec in it" % (container.id, st.status))
    if proc.terminal and detach and console_socket is None:
        raise UsageError("exec --tty --detach needs --console-socket")
    if not proc.terminal and console_socket is not None:
        raise UsageError("--console-socket given without --tty")
    from pyoci.process import refuse_labels

    refuse_labels(proc)
    cgroup = container._cgroup()
    if cgroups:
        cgroup = cgroup.sub(cgroups)
    pidfd_to = None
    if pidfd_socket is not None:
        from pyoci import pidfd

        pidfd_to = pidfd.connect(pidfd_socket)  # before anything is started
    if config is None:
        config = container.store.load_config(container.id)
    base: Spec = specmod.parse(config, st.bundle)
    base.process = proc
    base.hooks = {k: [] for k in base.hooks}
    base.linux.namespaces = namespaces.of_process(base.linux, st.pid)
    plan = namespaces.Plan(base.linux)
    from pyoci.state import proc_start_time

    if proc_start_time(st.pid) != st.pid_start:  # the fds must be the container's, not a recycled pid's
        plan.close()
        raise InvalidState("container %r has exited" % container.id)
    bootstrap.preload(base)
    from pyoci import log
    from pyoci.process import place_exec_stage, warn_ungrantable

    log.debug("exec in container %s (pid %d): %s" % (container.id, st.pid, " ".join(proc.args)))

    warn_ungrantable(proc.capabilities)
    ours = theirs = None
    console = None
    if proc.terminal:
        if console_socket is not None:
            console = consolemod.connect(console_socket)
        else:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            console = theirs
    if not detach:
        import prctl

        prctl.set_child_subreaper(True)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    launch = bootstrap.Launch(spec=base, sync=child, exec_listener=None, namespaces=plan,
                              cgroup_paths={}, console=console, preserve_fds=preserve_fds,
                              extra={"exec": True, "dmz": bootstrap.load_dmz(), "preserved": preserved,
                                     "proxied": console_socket is None})
    # one cgroup v2 directory: the stage is born in it, unless execCPUAffinity.initial must apply before it joins
    aff = proc.exec_cpu_affinity
    into = list(cgroup.paths) == [""] and not (aff is not None and aff.initial)
    cgroup_fd = os.open(cgroup.paths[""], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if into else None
    try:
        pid, placed = bootstrap.fork_into(cgroup_fd)  # the child closes its copy
    except BaseException:
        if cgroup_fd is not None:
            os.close(cgroup_fd)
        raise
    if pid == 0:
        parent.close()
        bootstrap.stage1(launch)
    if cgroup_fd is not None:
        os.close(cgroup_fd)
    child.close()
    plan.close()
    if console is not None:
        console.close()
    target = 0
    try:
        place_exec_stage(pid, proc)
        if not placed:
            cgroup.add(pid)
        bootstrap.send(parent, "go")
        # the stage loads the filter before it execs pyoci-dmz, which forks the process: the agent hears of the
        # stage (the pid the listener's first notifications come from)
        target = bootstrap.recv_past_listener(
            parent, "init", bootstrap.to_agent(base.linux.seccomp, pid, dict(st.oci(), pid=st.pid)))["pid"]
        os.waitpid(pid, 0)
        forward = Forwarder(target) if not detach else None
        try:
            try:
                data = parent.recv(1 << 20)  # EOF: exec'd (the socket is close-on-exec); the recv timeout holds
            except TimeoutError:
                raise ContainerError("exec: the process was not exec'd within %d s" % bootstrap.SETUP_TIMEOUT) from None
            if data:
                from pyoci import jsonio

                raise ContainerError("exec: %s" % jsonio.loads(data).get("message", "failed"))
            if pid_file:
                write_pid_file(pid_file, target)
            if pidfd_to is not None:
                from pyoci import pidfd

                pidfd.send(pidfd_to, target)
                pidfd_to = None
            if detach:
                return 0
            proxy = None
            if ours is not None:
                proxy = TtyProxy(consolemod.recv_fd(ours))
                assert forward is not None
                forward.on_winch = proxy.resize
            try:
                return wait_for(target)
            finally:
                if proxy is not None:
                    proxy.close()
        finally:
            if forward is not None:
                forward.restore()
    except BaseException:
        for p in (pid, target):
            if p:
                try:
                    os.kill(p, 9)
                    os.waitpid(p, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        raise
    finally:
        parent.close()
        if ours is not None:
            ours.close()
        if pidfd_to is not None:
            pidfd_to.close()

