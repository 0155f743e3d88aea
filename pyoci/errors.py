"""One exception hierarchy; the CLI maps each class to an exit code and a one-line message."""
from __future__ import annotations


class PyociError(Exception):
    """Base of every error pyoci reports to a user."""

    exit_code = 1


class UsageError(PyociError):
    """Bad command-line input."""

    exit_code = 2


class ConfigError(PyociError):
    """config.json is missing, malformed or asks for something impossible."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class NotFound(PyociError):
    """No container with that id under --root."""


class AlreadyExists(PyociError):
    """A container with that id already exists under --root."""


class InvalidState(PyociError):
    """The operation is not allowed in the container's current status."""


class ContainerError(PyociError):
    """Setting the container up failed (in the runtime or inside the init process)."""


class HookError(PyociError):
    """A lifecycle hook failed or timed out."""


class NotSupported(PyociError):
    """The request is valid OCI but pyoci does not implement it (yet)."""
