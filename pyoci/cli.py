"""Command line, runc-compatible: a thin layer over pyoci.container.

Start-up cost is paid by every container, so a well-formed hot-path command (create/start/state/kill/
delete/run/...) is parsed by a tiny table-driven parser; click, built from the same table, is imported only
for --help, usage errors and anything the fast parser does not recognise.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

from pyoci import __version__ as VERSION


class Opt:
    """One option: kind bool is a flag, str/int take a value."""

    __slots__ = ("dest", "flags", "kind", "default", "help", "choices")

    def __init__(self, dest: str, flags: tuple[str, ...], kind: type = bool, default: Any = None, help: str = "",
                 choices: tuple[str, ...] = ()) -> None:
        self.dest, self.flags, self.kind, self.default, self.help, self.choices = (
            dest, flags, kind, default, help, choices)


class Cmd:
    """One command: positional names (a trailing '?' marks an optional one) and options."""

    __slots__ = ("help", "args", "opts")

    def __init__(self, help: str, args: tuple[str, ...] = (), opts: tuple[Opt, ...] = ()) -> None:
        self.help, self.args, self.opts = help, args, opts


GLOBAL = (
    Opt("root", ("--root",), str, "/run/pyoci", "root directory for storage of container state"),
    Opt("log", ("--log",), str, "", "set the log file to write pyoci logs to (default is stderr)"),
    Opt("log_format", ("--log-format",), str, "text", "set the log format", ("text", "json")),
    Opt("debug", ("--debug",), bool, False, "enable debug logging"),
    Opt("systemd_cgroup", ("--systemd-cgroup",), bool, False, "cgroups as systemd units (cgroupsPath slice:prefix:name)"),
    Opt("rootless", ("--rootless",), str, "auto", "ignore cgroup permission errors", ("true", "false", "auto")),
    Opt("criu", ("--criu",), str, "criu", "path to the criu binary (checkpoint/restore is not supported)"),
)
_BUNDLE = Opt("bundle", ("-b", "--bundle"), str, "", "path to the root of the bundle directory (default: cwd)")
_CREATE_OPTS = (
    _BUNDLE,
    Opt("console_socket", ("--console-socket",), str, None, "unix socket that receives the pty master"),
    Opt("pid_file", ("--pid-file",), str, None, "file to write the container's init pid to"),
    Opt("no_pivot", ("--no-pivot",), bool, False, "use MS_MOVE and chroot instead of pivot_root"),
    Opt("no_new_keyring", ("--no-new-keyring",), bool, False, "do not create a new session keyring"),
    Opt("preserve_fds", ("--preserve-fds",), int, 0, "pass N additional fds (3..3+N-1) to the container"),
    Opt("pidfd_socket", ("--pidfd-socket",), str, None, "unix socket that receives a pidfd of the init"),
)
COMMANDS: dict[str, Cmd] = {
    "create": Cmd("create a container", ("ID",), _CREATE_OPTS),
    "start": Cmd("run the user-defined process of a created container", ("ID",)),
    "state": Cmd("print the state of a container", ("ID",)),
    "kill": Cmd("send a signal (default SIGTERM) to the container's init process", ("ID", "SIGNAL?"),
                (Opt("all", ("-a", "--all"), bool, False, "send the signal to all processes in the container"),)),
    "delete": Cmd("delete a stopped container (and its resources)", ("ID",),
                  (Opt("force", ("-f", "--force"), bool, False, "kill the container first if it still runs"),)),
    "run": Cmd("create and start a container, wait for it (unless --detach)", ("ID",), _CREATE_OPTS + (
        Opt("detach", ("-d", "--detach"), bool, False, "detach from the container's process"),
        Opt("keep", ("--keep",), bool, False, "do not delete the container after it exits"),
        Opt("no_subreaper", ("--no-subreaper",), bool, False, "accepted for runc compatibility"),
    )),
    "exec": Cmd("run a process in a created or running container", ("ID", "COMMAND*"), (
        Opt("console_socket", ("--console-socket",), str, None, "unix socket that receives the pty master"),
        Opt("cwd", ("--cwd",), str, None, "current working directory in the container"),
        Opt("env", ("-e", "--env"), list, None, "set an environment variable (KEY=VALUE), repeatable"),
        Opt("tty", ("-t", "--tty"), bool, False, "allocate a pseudo-TTY"),
        Opt("user", ("-u", "--user"), str, None, "UID[:GID] to run the process as"),
        Opt("additional_gids", ("-g", "--additional-gids"), list, None, "additional gid, repeatable"),
        Opt("process", ("-p", "--process"), str, None, "path to a process.json (overrides the command line)"),
        Opt("detach", ("-d", "--detach"), bool, False, "detach from the process"),
        Opt("pid_file", ("--pid-file",), str, None, "file to write the process's pid to"),
        Opt("process_label", ("--process-label",), str, None, "SELinux label (not supported)"),
        Opt("apparmor", ("--apparmor",), str, None, "AppArmor profile (not supported)"),
        Opt("no_new_privs", ("--no-new-privs",), bool, False, "set no_new_privs for the process"),
        Opt("cap", ("-c", "--cap"), list, None, "add a capability, repeatable"),
        Opt("preserve_fds", ("--preserve-fds",), int, 0, "pass N additional fds (3..3+N-1)"),
        Opt("ignore_paused", ("--ignore-paused",), bool, False, "exec even in a paused container (it starts frozen)"),
        Opt("cgroup", ("--cgroup",), list, None, "run in an existing sub-cgroup: [CONTROLLER:]PATH, repeatable"),
        Opt("pidfd_socket", ("--pidfd-socket",), str, None, "unix socket that receives a pidfd of the process"),
    )),
    "ps": Cmd("list the processes of a container (table: ps(1) output for them; json: their pids)",
              ("ID", "PS_ARGS*"), (
        Opt("format", ("-f", "--format"), str, "table", "output format", ("table", "json")),
    )),
    "events": Cmd("print the container's resource usage and OOM kills as JSON lines (runc's format)", ("ID",), (
        Opt("stats", ("--stats",), bool, False, "print the stats once and exit"),
        Opt("interval", ("--interval",), str, "5s", "how often to print the stats (a duration: 5s, 100ms, 1m)"),
    )),
    "pause": Cmd("freeze every process of a running container", ("ID",)),
    "resume": Cmd("thaw a paused container", ("ID",)),
    "update": Cmd("change the resource limits of a live container", ("ID",), (
        Opt("resources", ("-r", "--resources"), str, None, "a linux.resources JSON file ('-' for stdin)"),
        Opt("blkio_weight", ("--blkio-weight",), int, None, "block IO weight (10-1000)"),
        Opt("cpu_period", ("--cpu-period",), int, None, "CPU CFS period in microseconds"),
        Opt("cpu_quota", ("--cpu-quota",), int, None, "CPU CFS quota in microseconds"),
        Opt("cpu_burst", ("--cpu-burst",), int, None, "CPU CFS burst in microseconds"),
        Opt("cpu_idle", ("--cpu-idle",), int, None, "1: the container's cgroup runs as SCHED_IDLE (0: not)"),
        Opt("cpu_share", ("--cpu-share",), int, None, "CPU shares (relative weight)"),
        Opt("cpu_rt_period", ("--cpu-rt-period",), int, None, "CPU real-time period in microseconds"),
        Opt("cpu_rt_runtime", ("--cpu-rt-runtime",), int, None, "CPU real-time runtime in microseconds"),
        Opt("cpuset_cpus", ("--cpuset-cpus",), str, None, "CPUs to use (0-3, 0,1)"),
        Opt("cpuset_mems", ("--cpuset-mems",), str, None, "memory nodes to use (0-3, 0,1)"),
        Opt("memory", ("--memory",), str, None, "memory limit (bytes, or with k/m/g suffix)"),
        Opt("memory_reservation", ("--memory-reservation",), str, None, "memory soft limit"),
        Opt("memory_swap", ("--memory-swap",), str, None, "memory plus swap limit (-1: unlimited)"),
        Opt("kernel_memory", ("--kernel-memory",), str, None, "accepted, ignored like runc on new kernels"),
        Opt("kernel_memory_tcp", ("--kernel-memory-tcp",), str, None, "accepted, ignored like runc"),
        Opt("pids_limit", ("--pids-limit",), int, None, "maximum number of processes"),
        Opt("l3_cache_schema", ("--l3-cache-schema",), str, None, "Intel RDT (not supported)"),
        Opt("mem_bw_schema", ("--mem-bw-schema",), str, None, "Intel RDT (not supported)"),
    )),
    "list": Cmd("list containers under --root", (), (
        Opt("quiet", ("-q", "--quiet"), bool, False, "display only container ids"),
        Opt("format", ("-f", "--format"), str, "table", "output format", ("table", "json")),
    )),
    "spec": Cmd("write a default config.json into the bundle", (), (
        _BUNDLE, Opt("rootless", ("--rootless",), bool, False, "a spec for a rootless container"),
    )),
    "features": Cmd("print what this runtime implements (runtime-spec features.md) as JSON", (), (
        Opt("host", ("--host",), bool, False, "only what will work on this host (kernel, cgroups, systemd)"),
    )),
    "completion": Cmd("print the shell completion script for bash, zsh or fish (e.g. source <(pyoci completion "
                      "bash))", ("SHELL",)),
    "validate": Cmd("check a bundle's config.json and print every problem", (), (
        _BUNDLE, Opt("format", ("-f", "--format"), str, "text", "output format", ("text", "json")),
    )),
}


class _Fallback(Exception):
    """The fast parser gives up; click will parse (and explain) the command line."""


def _take(opts: tuple[Opt, ...], argv: list[str], i: int, out: dict[str, Any]) -> int:
    """Consume one option at argv[i]; returns the next index."""
    word = argv[i]
    name, eq, inline = word.partition("=")
    for o in opts:
        if name in o.flags:
            if o.kind is bool:
                if eq:
                    raise _Fallback
                out[o.dest] = True
                return i + 1
            if eq:
                value = inline
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            else:
                raise _Fallback
            if o.choices and value not in o.choices:
                raise _Fallback
            if o.kind is list:
                out[o.dest] = (out.get(o.dest) or []) + [value]
                return i + 1
            try:
                out[o.dest] = o.kind(value)
            except ValueError:
                raise _Fallback from None
            return i + 1
    raise _Fallback


def fast_parse(argv: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    g = {o.dest: o.default for o in GLOBAL}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i = _take(GLOBAL, argv, i, g)
    if i >= len(argv) or argv[i] not in COMMANDS:
        raise _Fallback
    name = argv[i]
    cmd = COMMANDS[name]
    opts = {o.dest: o.default for o in cmd.opts}
    positional: list[str] = []
    fixed = [a for a in cmd.args if not a.endswith("*")]
    varargs = len(fixed) < len(cmd.args)
    i += 1
    while i < len(argv):
        word = argv[i]
        if varargs and len(positional) == len(fixed):  # `exec ID cmd -x`: the rest is the command
            positional.extend(argv[i + 1:] if word == "--" else argv[i:])
            break
        if word == "--":
            positional.extend(argv[i + 1:])
            break
        if word.startswith("-") and len(word) > 1 and not (positional and name == "kill" and word[1:].isdigit()):
            i = _take(cmd.opts, argv, i, opts)
        else:
            positional.append(word)
            i += 1
    required = [a for a in fixed if not a.endswith("?")]
    if len(positional) < len(required) or (not varargs and len(positional) > len(cmd.args)):
        raise _Fallback
    for a, v in zip(fixed, positional):
        opts[a.rstrip("?").lower()] = v
    if varargs:
        opts[cmd.args[-1].rstrip("*").lower()] = positional[len(fixed):]
    return name, g, opts


# --- handlers: each takes the global options and the command's options --------------------------------
def _setup(g: dict[str, Any]) -> None:
    from pyoci import log

    log.configure(g["log"], g["log_format"], g["debug"])
    if g["rootless"] == "true":
        from pyoci.errors import NotSupported

        raise NotSupported("--rootless=true: rootless containers are not supported yet")


def do_create(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    Container.create(o["id"], o["bundle"] or os.getcwd(), g["root"], pid_file=o["pid_file"],
                     console_socket=o["console_socket"], preserve_fds=o["preserve_fds"], no_pivot=o["no_pivot"],
                     no_new_keyring=o["no_new_keyring"], systemd_cgroup=g["systemd_cgroup"],
                     pidfd_socket=o["pidfd_socket"])
    return 0


def do_start(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    Container.load(o["id"], g["root"]).start()
    return 0


def do_state(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    state = Container.load(o["id"], g["root"]).state()
    from pyoci import jsonio

    sys.stdout.write(jsonio.dumps(state, indent=2) + "\n")
    return 0


def do_kill(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    Container.load(o["id"], g["root"]).kill(o.get("signal") or "SIGTERM", all=o["all"])
    return 0


def do_delete(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container
    from pyoci.errors import NotFound

    try:
        c = Container.load(o["id"], g["root"])
    except NotFound:
        if o["force"]:  # runc: delete --force of a missing container succeeds
            return 0
        raise
    c.delete(force=o["force"])
    return 0


def do_run(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.run import run

    return run(o["id"], o["bundle"] or os.getcwd(), g["root"], detach=o["detach"], keep=o["keep"],
               pid_file=o["pid_file"], console_socket=o["console_socket"], preserve_fds=o["preserve_fds"],
               no_pivot=o["no_pivot"], no_new_keyring=o["no_new_keyring"], systemd_cgroup=g["systemd_cgroup"],
               pidfd_socket=o["pidfd_socket"])


def do_list(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    states = Container.list(g["root"])
    if o["quiet"]:
        for st in states:
            print(st.id)
    elif o["format"] == "json":
        from pyoci import jsonio

        print(jsonio.dumps([{"ociVersion": st.oci()["ociVersion"], "id": st.id,
                           "pid": st.pid if st.status in ("created", "running") else 0, "status": st.status,
                           "bundle": st.bundle, "rootfs": st.rootfs, "created": st.created, "owner": st.owner,
                           "annotations": st.annotations or None} for st in states]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(st.id, str(st.pid if st.status in ("created", "running") else 0), st.status, st.bundle,
                  st.created, st.owner) for st in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def do_spec(g: dict[str, Any], o: dict[str, Any]) -> int:
    import json

    from pyoci.errors import AlreadyExists, PyociError
    from pyoci.spec import default_config

    path = os.path.join(o["bundle"] or ".", "config.json")
    if os.path.exists(path):
        raise AlreadyExists("%s already exists; remove it first" % path)
    try:
        with open(path, "w") as f:
            json.dump(default_config(o["rootless"]), f, indent="\t")
            f.write("\n")
    except OSError as e:
        raise PyociError("cannot write %s: %s" % (path, e.strerror)) from None
    return 0


def do_validate(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci import validate

    problems = validate.validate_bundle(o["bundle"] or os.getcwd(), full=True)
    errors = [p for p in problems if not p.warning]
    if o["format"] == "json":
        import json

        print(json.dumps({"valid": not errors, "problems": [
            {"path": p.path, "reason": p.reason, "level": "warning" if p.warning else "error"} for p in problems]},
            indent=2))
    else:
        for p in problems:
            print(("warning: %s" if p.warning else "%s") % p)
        if not errors:
            print("config.json is valid")
    return 1 if errors else 0


def do_events(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci import events
    from pyoci.container import Container
    from pyoci.errors import InvalidState

    interval = events.parse_duration(o["interval"])
    c = Container.load(o["id"], g["root"])
    status = c.refresh().status
    if status not in ("created", "running", "paused"):
        raise InvalidState("container %r is %s: container not running" % (c.id, status))

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        return events.run(c, interval, o["stats"], out)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away: nothing left to tell
        return 0


def do_completion(g: dict[str, Any], o: dict[str, Any]) -> int:
    from click.shell_completion import get_completion_class

    from pyoci.errors import UsageError

    cls = get_completion_class(o["shell"])
    if cls is None or o["shell"] not in ("bash", "zsh", "fish"):
        raise UsageError("completion: SHELL must be bash, zsh or fish, not %r" % o["shell"])
    print(cls(_click_group(), {}, "pyoci", "_PYOCI_COMPLETE").source())
    return 0


def do_features(g: dict[str, Any], o: dict[str, Any]) -> int:
    import json

    from pyoci.features import document

    print(json.dumps(document(host=o["host"]), indent=4))
    return 0


def do_exec(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container
    from pyoci.execute import build_process

    c = Container.load(o["id"], g["root"])
    from pyoci.errors import NotSupported

    for flag in ("apparmor", "process_label"):
        if o[flag]:
            raise NotSupported("exec --%s: not supported by pyoci yet" % flag.replace("_", "-"))
    try:
        gids = [int(x) for x in o["additional_gids"] or []]
    except ValueError:
        from pyoci.errors import UsageError

        raise UsageError("--additional-gids: expected numbers") from None
    config = c.store.load_config(c.id)
    proc = build_process(config, process_file=o["process"], args=o["command"], cwd=o["cwd"],
                         env=o["env"], tty=o["tty"], user=o["user"], additional_gids=gids, caps=o["cap"],
                         no_new_privs=o["no_new_privs"])
    return c.exec(proc, detach=o["detach"], pid_file=o["pid_file"], console_socket=o["console_socket"],
                  preserve_fds=o["preserve_fds"], ignore_paused=o["ignore_paused"], config=config,
                  cgroups=o["cgroup"], pidfd_socket=o["pidfd_socket"])


def do_ps(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    pids = Container.load(o["id"], g["root"]).processes()
    if o["format"] == "json":
        from pyoci import jsonio

        print(jsonio.dumps(pids))
        return 0
    import subprocess

    from pyoci.errors import PyociError

    try:
        out = subprocess.run(["ps"] + (o["ps_args"] or ["-ef"]), capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyociError("ps: %s" % str(getattr(e, "stderr", "") or e).strip()) from None
    lines = out.splitlines()
    if not lines or "PID" not in lines[0].split():
        raise PyociError("ps: its output has no PID column (ps %s)" % " ".join(o["ps_args"] or []))
    column = lines[0].split().index("PID")
    print(lines[0])
    wanted = {str(p) for p in pids}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in wanted:
            print(line)
    return 0


def do_pause(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    Container.load(o["id"], g["root"]).pause()
    return 0


def do_resume(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container

    Container.load(o["id"], g["root"]).resume()
    return 0


def _bytes(value: str, flag: str) -> int:
    """runc's sizes: a number, optionally with a k/m/g/t suffix (powers of 1024); -1 means unlimited."""
    from pyoci.errors import UsageError

    text = value.strip().lower().rstrip("b")
    scale = 1
    if text and text[-1] in "kmgt":
        scale = 1024 ** ("kmgt".index(text[-1]) + 1)
        text = text[:-1]
    try:
        return int(text) * scale if int(text) >= 0 else -1
    except ValueError:
        raise UsageError("%s %r: expected a size such as 512m or 2g" % (flag, value)) from None


def do_update(g: dict[str, Any], o: dict[str, Any]) -> int:
    from pyoci.container import Container
    from pyoci.errors import NotSupported, UsageError

    if o["l3_cache_schema"] or o["mem_bw_schema"]:
        raise NotSupported("update --l3-cache-schema/--mem-bw-schema: Intel RDT is not supported")
    resources: dict[str, Any] = {}
    if o["resources"]:
        from pyoci import jsonio

        try:
            data = sys.stdin.read() if o["resources"] == "-" else open(o["resources"]).read()
            resources = jsonio.loads(data)
        except (OSError, ValueError) as e:
            raise UsageError("--resources %s: %s" % (o["resources"], e)) from None
        if not isinstance(resources, dict):
            raise UsageError("--resources %s: must be a linux.resources JSON object" % o["resources"])
    cpu = {k: o[f] for k, f in (("period", "cpu_period"), ("quota", "cpu_quota"), ("burst", "cpu_burst"),
                                ("idle", "cpu_idle"), ("shares", "cpu_share"),
                                ("realtimePeriod", "cpu_rt_period"), ("realtimeRuntime", "cpu_rt_runtime"),
                                ("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")) if o[f] is not None}
    memory = {k: _bytes(o[f], "--" + f.replace("_", "-")) for k, f in (
        ("limit", "memory"), ("reservation", "memory_reservation"), ("swap", "memory_swap")) if o[f] is not None}
    for section, values in (("cpu", cpu), ("memory", memory)):
        if values:
            resources[section] = dict(resources.get(section) or {}, **values)
    if o["pids_limit"] is not None:
        resources["pids"] = {"limit": o["pids_limit"]}
    if o["blkio_weight"] is not None:
        resources["blockIO"] = dict(resources.get("blockIO") or {}, weight=o["blkio_weight"])
    Container.load(o["id"], g["root"]).update(resources)
    return 0


HANDLERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], int]] = {
    "exec": do_exec, "ps": do_ps, "pause": do_pause, "resume": do_resume, "update": do_update,
    "create": do_create, "start": do_start, "state": do_state, "kill": do_kill, "delete": do_delete,
    "run": do_run, "list": do_list, "spec": do_spec, "validate": do_validate, "features": do_features,
    "events": do_events, "completion": do_completion,
}


def dispatch(name: str, g: dict[str, Any], o: dict[str, Any]) -> int:
    """Run one command; every PyociError becomes one line on stderr (and in --log) and an exit code."""
    from pyoci.errors import PyociError, UsageError

    try:
        _setup(g)
        return HANDLERS[name](g, o)
    except PyociError as e:
        _report(str(e), g)
        if name == "exec" and not isinstance(e, UsageError):
            return 255  # runc's exec: any failure to run the process (engines tell it from the process's codes)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except Exception as e:  # noqa: BLE001 - a traceback is never the answer a user gets
        if g.get("debug"):
            import traceback

            traceback.print_exc()
        _report("internal error: %s: %s" % (type(e).__name__, e), g)
        return 1


def _report(msg: str, g: dict[str, Any]) -> None:
    from pyoci import log

    if g.get("log"):
        log.error(msg)
    sys.stderr.write("pyoci: %s\n" % msg)


def _click_group() -> Any:
    """pyoci's click interface (a click.Group), built from COMMANDS and GLOBAL."""
    import click

    def params(opts: tuple[Opt, ...]) -> list[click.Parameter]:
        out: list[click.Parameter] = []
        for o in opts:
            if o.kind is bool:
                out.append(click.Option(list(o.flags) + [o.dest], is_flag=True, default=o.default, help=o.help))
            elif o.kind is list:
                out.append(click.Option(list(o.flags) + [o.dest], multiple=True, help=o.help))
            else:
                typ = click.Choice(o.choices) if o.choices else o.kind
                out.append(click.Option(list(o.flags) + [o.dest], type=typ, default=o.default, help=o.help,
                                        show_default=o.default not in (None, "")))
        return out

    def make(name: str, cmd: Cmd) -> click.Command:
        args = [click.Argument([a.rstrip("?*").lower()], required=not a.endswith("?"),
                               nargs=-1 if a.endswith("*") else 1) for a in cmd.args]

        @click.pass_context
        def callback(ctx: click.Context, **o: Any) -> None:
            o = {k: list(v) if isinstance(v, tuple) else v for k, v in o.items()}
            ctx.exit(dispatch(name, ctx.obj, o))

        varargs = any(a.endswith("*") for a in cmd.args)
        return click.Command(name, params=params(cmd.opts) + list(args), callback=callback, help=cmd.help,
                             context_settings={"allow_interspersed_args": not varargs})

    @click.pass_context
    def group_cb(ctx: click.Context, **g: Any) -> None:
        ctx.obj = g

    group = click.Group("pyoci", params=params(GLOBAL), callback=group_cb,
                        help="pyoci: an OCI container runtime in Python (runc-compatible).",
                        context_settings={"help_option_names": ["-h", "--help"]})
    group.params.append(click.Option(["-v", "--version"], is_flag=True, expose_value=False, is_eager=True,
                                     callback=_version, help="print the version"))
    for name, cmd in COMMANDS.items():
        group.add_command(make(name, cmd))
    return group


def _click_main(argv: list[str]) -> NoReturn:
    """The full click interface, built from the same tables (help, errors, unusual spellings, completion)."""
    _click_group().main(argv, prog_name="pyoci")
    raise SystemExit(0)


def _version(ctx: Any, _param: Any, value: bool) -> None:
    if value:
        from pyoci.state import OCI_VERSION

        print("pyoci version %s\ncommit: %s\nspec: %s" % (VERSION, _commit(), OCI_VERSION))
        ctx.exit(0)


def _commit() -> str:
    """The checkout's commit (`git describe`), as runc's `commit:` line; "unknown" outside a git checkout."""
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # past the editable link tree
    if not os.path.exists(os.path.join(here, ".git")):
        return "unknown"
    try:
        out = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--tags"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> NoReturn:
    import gc

    # a command lives milliseconds and makes no cyclic garbage worth collecting: the collector's runs during
    # the imports cost ~1.4 ms of create (and copy-on-write faults in every forked stage). The long waits
    # (run and exec in the foreground, events) turn it back on.
    gc.disable()
    argv = sys.argv[1:] if argv is None else argv
    try:
        name, g, o = fast_parse(argv)
    except _Fallback:
        _click_main(argv)
    code = dispatch(name, g, o)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)  # skip interpreter teardown: nothing is left to clean up, and every container pays for it
