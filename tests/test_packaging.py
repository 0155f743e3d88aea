"""The package as a user gets it: a wheel built from the checkout holds the compiled cffi modules, the static
exec helper and the schemas, builds without deprecation warnings from our metadata, and runs a container
from a fresh directory with nothing of the checkout on the path; its console script replaced by the isolated
launcher (pyoci.launcher, as `make install` does) runs one too, and nothing in the environment gets code into
the runtime."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import Bundle

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out),
                        str(REPO)], capture_output=True, text=True, timeout=300, cwd=out)
    assert r.returncode == 0, r.stdout + r.stderr
    noise = [line for line in (r.stdout + r.stderr).splitlines() if "deprecat" in line.lower()]
    assert not noise, noise
    (whl,) = out.glob("pyoci-*.whl")
    return whl


def test_the_wheel_holds_the_compiled_parts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("pyoci/_native.abi3.so", "pyoci/_seccomp.abi3.so", "pyoci/_dmz", "pyoci/schemas/config-schema.json",
                 "pyoci/schemas/features-schema.json", "pyoci/cli.py"):
        assert need in names, sorted(names)
    assert not [n for n in names if n.startswith(("tests/", "conformance/", "bundles/"))]


def test_the_installed_wheel_runs_a_container(wheel: Path, bundle: Bundle, tmp_path: Path) -> None:
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
                        str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    deps = [p for p in sys.path if p.endswith("site-packages")]  # click, cffi, prctl, jsonschema: the venv's
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target)] + deps), PYTHONDONTWRITEBYTECODE="1")
    run = tmp_path / "run"
    run.mkdir()
    probe = subprocess.run([sys.executable, "-c", "import pyoci.cli, sys; print(pyoci.cli.__file__)"],
                           capture_output=True, text=True, env=env, cwd=run)
    assert probe.stdout.startswith(str(target)), probe.stdout + probe.stderr  # not the checkout's copy
    bundle.sh("echo from-the-wheel")
    bundle.save()
    root = tmp_path / "root"
    r = subprocess.run([sys.executable, "-m", "pyoci", "--root", str(root), "run", "--bundle", str(bundle.path),
                        "wheel-%d" % os.getpid()], capture_output=True, text=True, env=env, cwd=run, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["from-the-wheel"], r.stdout + r.stderr
    # the launcher written for this install: pyoci's own directory first, then the venv's site-packages
    launcher = tmp_path / "pyoci"
    r = subprocess.run([sys.executable, "-m", "pyoci.launcher", str(launcher)], capture_output=True, text=True,
                       env=env, cwd=run)
    assert r.returncode == 0, r.stderr
    assert launcher.read_text().splitlines()[0] == "#!%s -IS" % sys.executable
    assert str(target) in launcher.read_text()
    r = subprocess.run([str(launcher), "--root", str(root), "run", "--bundle", str(bundle.path), "launched-%d"
                        % os.getpid()], capture_output=True, text=True, cwd=run, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["from-the-wheel"], r.stdout + r.stderr
    shutil.rmtree(root, ignore_errors=True)


def test_the_launcher_takes_no_code_from_the_environment(bundle: Bundle, tmp_path: Path) -> None:
    """The installed bin/pyoci (what every test runs) starts Python isolated: a PYTHONPATH with a pyoci of its
    own and a sitecustomize, a PYTHONSTARTUP and PYTHONINSPECT change nothing (pip's script would import both
    and run the fake pyoci)."""
    script = Path(sys.executable).with_name("pyoci")
    assert script.read_text().splitlines()[0] == "#!%s -IS" % sys.executable, "bin/pyoci is not the launcher"
    evil = tmp_path / "evil"
    (evil / "pyoci").mkdir(parents=True)
    marker = tmp_path / "ran"
    for name in ("sitecustomize.py", "usercustomize.py", "pyoci/__init__.py", "pyoci/cli.py", "startup.py"):
        (evil / name).write_text("open(%r, 'a').write(%r)\n" % (str(marker), name))
    env = dict(os.environ, PYTHONPATH=str(evil), PYTHONSTARTUP=str(evil / "startup.py"), PYTHONINSPECT="1",
               PYTHONHOME="/nonexistent", PYTHONUSERBASE=str(evil))
    bundle.sh("echo isolated")
    bundle.save()
    root = tmp_path / "root"
    r = subprocess.run([str(script), "--root", str(root), "run", "--bundle", str(bundle.path), "iso-%d" % os.getpid()],
                       capture_output=True, text=True, env=env, cwd=evil, timeout=60)
    assert (r.returncode, r.stdout.split()) == (0, ["isolated"]), r.stdout + r.stderr
    assert not marker.exists(), marker.read_text()
    shutil.rmtree(root, ignore_errors=True)
