"""Lifecycle hooks: the container state on stdin, args/env/timeout as configured (config.md#posix-platform-hooks)."""
from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from pyoci.errors import HookError
from pyoci.spec import Hook

# a failing hook of these kinds aborts the operation; the others only warn (runtime.md#lifecycle)
FATAL = ("prestart", "createRuntime", "createContainer", "startContainer")


def run(kind: str, hooks: list[Hook], state: dict[str, Any]) -> None:
    """Run each hook in order; stop at the first failure of a fatal kind, warn and go on otherwise."""
    if not hooks:
        return
    from pyoci import jsonio

    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            _run_one(hook, data)
        except HookError as e:
            msg = "%s hook #%d (%s): %s" % (kind, i, hook.path, e)
            if kind in FATAL:
                raise HookError(msg) from None
            from pyoci import log

            log.warning(msg)


def _run_one(hook: Hook, data: bytes) -> None:
    import subprocess

    argv = hook.args or [hook.path]
    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        proc = subprocess.Popen(argv, executable=hook.path, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/", close_fds=True,
                                start_new_session=True)
    except OSError as e:
        raise HookError("cannot execute: %s" % (e.strerror or e)) from None
    try:
        out, _ = proc.communicate(data, timeout=hook.timeout if hook.timeout else None)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        raise HookError("timed out after %ds" % hook.timeout) from None
    except BrokenPipeError:  # the hook did not read its stdin: allowed
        out = proc.stdout.read() if proc.stdout else b""
        proc.wait()
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
        how = ("killed by signal %d" % -proc.returncode) if proc.returncode < 0 else "exit status %d" % proc.returncode
        raise HookError(how + (": " + tail[0] if tail else ""))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass
