"""Runtime-agnostic OCI runtime-spec conformance suite.

The suite drives an OCI runtime only through its runc-compatible command line
(``--root R create --bundle B --pid-file F [--console-socket S] ID``, ``start``,
``state``, ``kill``, ``delete``) and observes the container from the outside
(state JSON, /proc of the container process, cgroup files, files left by hooks)
and from the inside (``/probe``, a busybox sh script that prints key=value lines).

Run it with ``python -m conformance --runtime PATH``; see conformance/README.md.
"""

SPEC_VERSION = "1.1.0"  # the runtime-spec text the case citations refer to
