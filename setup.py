"""setuptools shim: cffi's out-of-line build hook (cffi_modules) has no pyproject.toml spelling."""
from setuptools import setup

setup(cffi_modules=["pyoci/_build_native.py:ffibuilder"])
