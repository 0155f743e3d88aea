"""setuptools shim for what pyproject.toml cannot say:

- cffi's out-of-line build hook (cffi_modules) compiles pyoci._native at install time;
- pyoci/_dmz, the tiny static exec helper (see pyoci/_dmz.c), is compiled next to it;
- the top-level schemas/ are shipped inside the package as pyoci/schemas (pyoci.validate looks in both places).
"""
import glob
import os
import platform
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        dest = os.path.join(self.build_lib, "pyoci", "schemas")
        os.makedirs(dest, exist_ok=True)
        for path in glob.glob("schemas/*.json"):
            shutil.copy(path, dest)


class BuildWithDmz(build_ext):
    def run(self) -> None:
        super().run()
        out_dir = "pyoci" if self.inplace else os.path.join(self.build_lib, "pyoci")
        os.makedirs(out_dir, exist_ok=True)
        out = os.path.join(out_dir, "_dmz")
        cc = shlex.split(os.environ.get("CC", "cc"))
        if platform.machine() in ("x86_64", "aarch64"):
            flags = ["-static", "-nostdlib", "-fno-stack-protector", "-fno-builtin", "-O2", "-s"]
        else:
            flags = ["-static", "-O2", "-s"]
        subprocess.run(cc + flags + ["-o", out, "pyoci/_dmz.c"], check=True)


setup(cffi_modules=["pyoci/_build_native.py:ffibuilder", "pyoci/_build_seccomp.py:ffibuilder"],
      cmdclass={"build_py": BuildWithSchemas, "build_ext": BuildWithDmz})
