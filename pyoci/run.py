"""`run`: create + start, then (in the foreground) wait as subreaper, forward signals, proxy a terminal."""
from __future__ import annotations

import os

from pyoci.errors import PyociError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run(cid: str, bundle: str, root: str, *, detach: bool = False, keep: bool = False,
        pid_file: str | None = None, console_socket: str | None = None, preserve_fds: int = 0,
        no_pivot: bool = False, no_new_keyring: bool = False, systemd_cgroup: bool = False,
        pidfd_socket: str | None = None) -> int:
    """Returns the container's exit code (128+N if killed by signal N); 0 when detached."""
    from pyoci import spec as specmod
    from pyoci.container import Container

    from pyoci.process import passed_fds

    passed = passed_fds(preserve_fds)  # the caller's, before we open anything ourselves
    spec = specmod.load(bundle)
    tty = bool(spec.process and spec.process.terminal) and console_socket is None and not detach
    ours = theirs = None
    if tty:
        import _socket as socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # in the foreground we reap the init, our grandchild: create makes us its subreaper
        c = Container.create(cid, bundle, root, pid_file=pid_file, console_socket=console_socket,
                             preserve_fds=preserve_fds, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                             systemd_cgroup=systemd_cgroup, pidfd_socket=pidfd_socket, _console=theirs, _spec=spec,
                             _subreaper=not detach, _passed=passed)
    finally:
        if theirs is not None:
            theirs.close()
    forward = Forwarder(c.refresh().pid) if not detach else None
    try:
        c.start()
    except PyociError:
        if forward:
            forward.restore()
        _cleanup(c)
        raise
    if detach:
        return 0
    assert forward is not None
    proxy = None
    try:
        if ours is not None:
            from pyoci.console import recv_fd

            proxy = TtyProxy(recv_fd(ours))
            forward.on_winch = proxy.resize
        code = wait_for(c.refresh().pid)
    finally:
        forward.restore()
        if proxy is not None:
            proxy.close()
        if ours is not None:
            ours.close()
    if not keep:
        _cleanup(c)
    return code


def wait_for(pid: int) -> int:
    """Reap children (we are their subreaper) until pid exits; its exit code, 128+N for signal N."""
    import gc

    gc.enable()  # the CLI turns it off for its short commands; this wait may last as long as the container
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if wpid == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _cleanup(c: Any) -> None:
    try:
        c.delete(force=True)
    except PyociError as e:
        from pyoci import log

        log.warning("cleanup of %s: %s" % (c.id, e))


class Forwarder:
    """Signals the runtime receives go to the container's init, as runc run does."""

    def __init__(self, pid: int) -> None:
        import _signal as signal

        self.pid = pid
        self.on_winch: Any = None
        self.saved: dict[int, Any] = {}
        skip = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU,
                signal.SIGTSTP, signal.SIGURG, 32, 33}  # 32/33: glibc's internal real-time signals
        for sig in range(1, signal.NSIG):
            if sig in skip:
                continue
            try:
                self.saved[sig] = signal.signal(sig, self._handle)
            except (OSError, ValueError):
                pass
        self.saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._winch)

    def _handle(self, sig: int, _frame: Any) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def _winch(self, _sig: int, _frame: Any) -> None:
        if self.on_winch is not None:
            self.on_winch()

    def restore(self) -> None:
        import _signal as signal

        for sig, old in self.saved.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError, TypeError):
                pass


class TtyProxy:
    """Copy between our stdio and the container's pty master; raw mode while a real terminal is attached."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.saved: Any = None
        if os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
            self.resize()
        import threading

        self.out = threading.Thread(target=self._copy, args=(master, 1), daemon=True)
        self.inp = threading.Thread(target=self._copy, args=(0, master), daemon=True)
        self.out.start()
        self.inp.start()

    def resize(self) -> None:
        if os.isatty(0):
            import fcntl
            import termios

            fcntl.ioctl(self.master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))

    @staticmethod
    def _copy(src: int, dst: int) -> None:
        while True:
            try:
                data = os.read(src, 65536)
            except OSError:
                return
            if not data:
                return
            try:
                os.write(dst, data)
            except OSError:
                return

    def close(self) -> None:
        self.out.join(timeout=2)  # drain what the container printed last
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        os.close(self.master)
