"""setuptools shim: cffi's out-of-line build hook (cffi_modules) has no pyproject.toml spelling, and the
top-level schemas/ are shipped inside the package as pyoci/schemas (pyoci.validate looks in both places)."""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        dest = os.path.join(self.build_lib, "pyoci", "schemas")
        os.makedirs(dest, exist_ok=True)
        for path in glob.glob("schemas/*.json"):
            shutil.copy(path, dest)


setup(cffi_modules=["pyoci/_build_native.py:ffibuilder"], cmdclass={"build_py": BuildWithSchemas})
