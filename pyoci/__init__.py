"""pyoci: an OCI-compliant low-level container runtime in Python.

Importing the package is cheap: the API (Container, errors) loads on first use.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["Container", "PyociError", "run"]


def __getattr__(name: str) -> Any:
    if name == "Container":
        from pyoci.container import Container

        return Container
    if name == "PyociError":
        from pyoci.errors import PyociError

        return PyociError
    if name == "run":
        from pyoci.run import run

        return run
    raise AttributeError(name)
