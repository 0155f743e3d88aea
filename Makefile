# The two commands (see README): `make run` sets everything up and runs the busybox container,
# `make test` runs the whole test suite. Both work on a fresh Debian 12 machine, as root.
# Debian's python3.11 where there is one: built with PGO and LTO and a static libpython, every pyoci command
# starts and runs ~8% faster with it than with an unoptimised build such as pyenv's (bench/bench.py)
PYTHON ?= $(or $(wildcard /usr/bin/python3.11),$(shell command -v python3.11 || command -v python3))
VENV   ?= .venv
PY     := $(VENV)/bin/python
ROOTFS := bundles/busybox/rootfs
APT    := libcap-dev libseccomp-dev busybox-static runc iproute2 python3.11-venv python3.11-dev
ENGINES := docker.io containerd podman

.PHONY: run test test-v2 deps engines install rootfs bench conformance
run: install rootfs
	cd bundles/busybox && ../../$(VENV)/bin/pyoci run demo-$$$$

# the host's suite, then tests/v2 inside a pure cgroup v2 guest (user-mode Linux; see tests/guest/README.md),
# which fails loudly when the guest cannot be built or booted
test: install rootfs engines
	$(PY) -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; rc=1; fi; \
	tests/guest/run-v2; v2=$$?; \
	tests/guest/run-v2 --systemd; sd=$$?; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; if [ $$v2 -ne 0 ]; then exit $$v2; fi; exit $$sd

test-v2: install rootfs
	tests/guest/run-v2
	tests/guest/run-v2 --systemd

# Debian's engines for the host's engine tests (tests/test_engines_hybrid.py), which start daemons of their own
engines:
	@missing=""; for p in $(ENGINES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $$missing; fi

deps:
	@missing=""; for p in $(APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# the strict editable install: a link tree in build/ (a plain directory on sys.path, no import hook at start-up)
# whose files are the checkout's; a new module needs `make install` again. Its one-time notice is filtered out.
# pip's bin/pyoci is then replaced by the isolated launcher (-I -S, pyoci's own paths: pyoci/launcher.py).
install: deps $(PY)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q --config-settings editable_mode=strict -e '.[test]'
	$(PY) -I -m pyoci.launcher $(VENV)/bin/pyoci
	$(PY) -m compileall -q pyoci build/__editable__.pyoci-*/pyoci

rootfs: deps
	@[ -x $(ROOTFS)/bin/busybox ] || sh bundles/busybox/build-rootfs.sh

bench: install rootfs
	$(PY) bench/bench.py

conformance: install rootfs
	$(PY) -m conformance --runtime $(VENV)/bin/pyoci --reference runc
