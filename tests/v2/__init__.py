"""Tests that need a pure cgroup v2 host: they run inside the user-mode-Linux guest (tests/guest/run-v2).

A package (this file) so that its conftest is imported as ``v2.conftest`` and never takes the place of
tests/conftest.py as the module ``conftest`` the other test files import their helpers from."""
