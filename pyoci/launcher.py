"""The isolated `pyoci` launcher: ``python -I -m pyoci.launcher PATH`` writes, at PATH (pip's console script,
as `make install` does), a script that starts the interpreter with ``-I -S`` and puts only the directories
pyoci and its dependencies were installed in on sys.path.

Why: every container pays the runtime's start-up four times or more (create, start, state, delete). pip's
script starts a full interpreter: ``site`` with a venv's .pth files (setuptools' distutils hack imports a
module at every start) costs about 1 ms per command on the development VM. And a runtime running as root
should not let the environment put code into it: ``-I`` ignores PYTHONPATH, PYTHONSTARTUP, PYTHONHOME,
PYTHONINSPECT and the user's site directory, ``-S`` a sitecustomize anywhere on the path. (Run it with
``-I`` too, so that the pyoci it finds is the installed one, not a checkout in the current directory.)
"""
from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = """#!%(python)s -IS
# pyoci's launcher, written by `python -I -m pyoci.launcher` (pyoci/launcher.py): an isolated interpreter
# with only these directories on sys.path
import sys
sys.path[:0] = %(paths)r
from pyoci.cli import main
main()
"""


def search_path() -> list[str]:
    """The directory this pyoci package was imported from, then the interpreter's site-packages (cffi's
    backend, prctl, click, jsonschema), each once."""
    out = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for key in ("purelib", "platlib"):
        path = sysconfig.get_path(key)
        if path not in out:
            out.append(path)
    return out


def script(python: str = sys.executable, paths: list[str] | None = None) -> str:
    """The launcher's text. A shebang line takes one argument and no spaces in the interpreter's path."""
    if not python or any(c.isspace() for c in python):
        raise ValueError("the interpreter's path %r cannot be a shebang line" % python)
    return TEMPLATE % {"python": python, "paths": search_path() if paths is None else paths}


def install(path: str, python: str = sys.executable) -> None:
    """Replace the file at path with the launcher, atomically, mode 0755."""
    tmp = path + ".pyoci-launcher"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    try:
        os.write(fd, script(python).encode())
        os.fchmod(fd, 0o755)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I -m pyoci.launcher PATH  (e.g. the venv's bin/pyoci)", file=sys.stderr)
        return 2
    try:
        install(argv[0])
    except (OSError, ValueError) as e:
        print("pyoci.launcher: %s: %s" % (argv[0], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
