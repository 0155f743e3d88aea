"""Terminals: the pty master over --console-socket (SCM_RIGHTS), consoleSize, and pass-through stdio."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import Bundle, ConsoleSocket, Runtime, read_until_eof, wait_for


def _terminal(bundle: Bundle, script: str, height: int = 0, width: int = 0) -> None:
    bundle.process["terminal"] = True
    if height:
        bundle.process["consoleSize"] = {"height": height, "width": width}
    bundle.sh(script)


def test_console_socket_receives_the_pty_master(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    _terminal(bundle, "tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; "
                      "[ -c /dev/console ] && echo console-ok", 37, 111)
    with rt.container(bundle, "--console-socket", console.path) as cid:
        master = console.receive()
        try:
            rt.ok("start", cid)
            text = read_until_eof(master).decode(errors="replace")
        finally:
            os.close(master)
        lines = [line.strip() for line in text.splitlines()]
        assert re.fullmatch(r"/dev/pts/\d+", lines[0]), text
        assert "37 111" in lines, text
        assert "all-ttys" in lines and "console-ok" in lines, text
        rt.wait_status(cid, "stopped")


def test_console_input_reaches_the_container(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    _terminal(bundle, "read line; echo \"got:$line\"")
    with rt.container(bundle, "--console-socket", console.path) as cid:
        master = console.receive()
        try:
            rt.ok("start", cid)
            os.write(master, b"hello-pty\n")
            text = read_until_eof(master).decode(errors="replace")
        finally:
            os.close(master)
        assert "got:hello-pty" in text


def test_console_socket_with_run(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    _terminal(bundle, "echo via-run; exit 5")
    cid = rt.new_id()
    bundle.save()
    p = subprocess.Popen(rt.argv("run", "-b", bundle.path, "--console-socket", console.path, cid),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master = console.receive()
        try:
            text = read_until_eof(master).decode(errors="replace")
        finally:
            os.close(master)
        assert p.wait(20) == 5
        assert "via-run" in text
    finally:
        p.kill()
        p.wait()


def test_terminal_without_console_socket_is_refused_at_create(rt: Runtime, bundle: Bundle) -> None:
    _terminal(bundle, "true")
    bundle.save()
    cid = rt.new_id()
    line = rt.refuse(bundle, cid=cid)
    assert "console" in line
    assert "does not exist" in rt.fail("state", cid)


def test_console_socket_that_nobody_listens_on(rt: Runtime, bundle: Bundle, short_tmp: Path) -> None:
    _terminal(bundle, "true")
    bundle.save()
    cid = rt.new_id()
    line = rt.refuse(bundle, "--console-socket", short_tmp / "nothing.sock", cid=cid)
    assert "console" in line


def test_run_in_foreground_with_terminal_proxies_stdio(rt: Runtime, bundle: Bundle) -> None:
    """terminal true, no console socket, foreground run: pyoci makes the pty and copies it to its stdio."""
    _terminal(bundle, "tty; echo proxied")
    r = rt.run(bundle, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "proxied" in r.stdout
    assert "/dev/pts/" in r.stdout


def test_without_terminal_the_callers_stdio_are_the_containers(rt: Runtime, bundle: Bundle) -> None:
    bundle.sh("cat; echo to-err >&2; [ -t 1 ] || echo not-a-tty")
    bundle.save()
    r = subprocess.run(rt.argv("run", "-b", bundle.path, rt.new_id()), input="from-stdin\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from-stdin\nnot-a-tty\n"
    assert r.stderr == "to-err\n"


def test_create_passes_its_stdio_to_the_container(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """runc semantics: the process started later writes to the stdout `create` was given."""
    bundle.sh("echo from-the-container")
    bundle.save()
    cid = rt.new_id()
    with open(tmp_path / "stdout", "w+") as f:
        subprocess.run(rt.argv("create", "-b", bundle.path, cid), stdin=subprocess.DEVNULL, stdout=f,
                       stderr=subprocess.DEVNULL, check=True, timeout=30)
    try:
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped")
        wait_for(lambda: (tmp_path / "stdout").read_text() == "from-the-container\n", what="output")
    finally:
        rt.ok("delete", "-f", cid)


def test_run_detached_with_console_socket(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    _terminal(bundle, "echo detached-tty; sleep 30")
    cid = rt.new_id()
    bundle.save()
    p = subprocess.Popen(rt.argv("run", "-d", "-b", bundle.path, "--console-socket", console.path, cid),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master = console.receive()
        try:
            assert p.wait(20) == 0
            assert rt.status(cid) == "running"
            text = b""
            import select

            while b"detached-tty" not in text:
                r, _, _ = select.select([master], [], [], 10)
                assert r, "no output from the detached container"
                text += os.read(master, 4096)
        finally:
            os.close(master)
    finally:
        p.kill()
        p.wait()
        rt.cmd("delete", "-f", cid)
