"""Lifecycle hooks: the container state on stdin, args/env/timeout as configured (config.md#posix-platform-hooks)."""
from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyoci.spec import Hook  # start and delete run the state's hooks without importing spec

from pyoci.errors import HookError

# a failing hook of these kinds is an error that ends the container (runtime-spec 1.3.0 runtime.md#lifecycle
# steps 3-9: "stop the container, and continue the lifecycle at step 12"); poststop's only warn (step 13)
FATAL = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart")


def run(kind: str, hooks: list[Hook], state: dict[str, Any], cwd: str | None = None,
        env: list[str] | None = None) -> None:
    """Run each hook in order; stop at the first failure of a fatal kind, warn and go on otherwise.

    As runc: a hook runs in its caller's working directory (createContainer's is the container's rootfs:
    cwd), and a hook without env of its own gets env (startContainer's: the container process's)."""
    if not hooks:
        return
    from pyoci import jsonio

    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, data, kind in FATAL, cwd, hook.env or env or [])
        except HookError as e:
            msg = "error running %s hook #%d: %s: %s" % (kind, i, hook.path, e)
            if kind in FATAL:
                raise HookError(msg) from None
            from pyoci import log

            log.warning(msg)


# poststop hooks only warn when they fail, so one without a timeout is bounded by this; the fatal kinds wait
# as long as the config says
UNTIMED_NONFATAL = 60


def deadline(hooks: list[Hook], base: float) -> float | None:
    """How long a wait may last that includes these hooks: None when one of them has no timeout."""
    if any(not h.timeout for h in hooks):
        return None
    return base + sum(h.timeout or 0 for h in hooks)


def _die_with_parent() -> None:
    """In the hook, before exec: killed when the runtime dies (its own session is for the timeout's killpg)."""
    import prctl

    parent = os.getppid()
    prctl.set_pdeathsig(9)
    if os.getppid() != parent:  # the runtime died before the line above
        os._exit(1)


def _run_one(hook: Hook, data: bytes, fatal: bool, cwd: str | None, environ: list[str]) -> None:
    import subprocess

    argv = hook.args or [hook.path]
    env = dict(e.split("=", 1) for e in environ if "=" in e)
    timeout = hook.timeout or (None if fatal else UNTIMED_NONFATAL)
    # output to a file, not a pipe: a daemon the hook leaves behind must not hold us until it exits
    with open(os.memfd_create("hook-output", os.MFD_CLOEXEC), "w+b") as out:  # no filesystem needed
        try:
            proc = subprocess.Popen(argv, executable=hook.path, env=env, stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=cwd, close_fds=True, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            raise HookError("cannot execute: %s" % (e.strerror or e)) from None
        try:
            try:
                proc.communicate(data, timeout=timeout)
            except BrokenPipeError:  # the hook did not read its stdin: allowed
                proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            raise HookError("timed out after %ds" % timeout) from None
        if proc.returncode != 0:
            out.seek(0)
            text = out.read(1 << 16)
            tail = text.decode(errors="replace").strip().splitlines()[-1:] if text else []
            rc = proc.returncode
            how = ("killed by signal %d" % -rc) if rc < 0 else "exit status %d" % rc
            raise HookError(how + (": " + tail[0] if tail else ""))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass
