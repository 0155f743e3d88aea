"""The Python API: Container.create/start/state/kill/delete/list, errors as PyociError subclasses."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Bundle, Runtime, pid_alive, wait_for


def test_container_lifecycle(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    from pyoci import Container

    out = tmp_path / "out"
    out.mkdir()
    bundle.bind(out, "/out")
    bundle.sh("echo ran > /out/ran; sleep 30")
    bundle.config["annotations"] = {"k": "v"}
    bundle.save()
    cid = rt.new_id()
    c = Container.create(cid, str(bundle.path), root=str(rt.root))
    try:
        assert c.id == cid
        st = c.state()
        assert st["id"] == cid and st["status"] == "created" and st["bundle"] == str(bundle.path)
        assert st["annotations"] == {"k": "v"}
        pid = st["pid"]
        assert pid_alive(pid)
        assert not (out / "ran").exists()
        # the CLI sees the same container
        assert json.loads(rt.ok("state", cid).stdout)["pid"] == pid
        c.start()
        assert c.state()["status"] == "running"
        wait_for(lambda: (out / "ran").exists(), what="process to run")
        assert [s.id for s in Container.list(str(rt.root))] == [cid]
        c.kill("KILL")
        wait_for(lambda: c.state()["status"] == "stopped", what="stopped")
        c.delete()
    finally:
        try:
            Container.load(cid, str(rt.root)).delete(force=True)
        except Exception:
            pass
    assert Container.list(str(rt.root)) == []


def test_delete_force_and_load(rt: Runtime, bundle: Bundle) -> None:
    from pyoci import Container

    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    Container.create(cid, str(bundle.path), root=str(rt.root))
    c = Container.load(cid, str(rt.root))
    c.start()
    pid = c.state()["pid"]
    c.delete(force=True)
    assert not pid_alive(pid)
    assert not (rt.root / cid).exists()


def test_errors_are_pyoci_errors(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    from pyoci import Container, PyociError

    with pytest.raises(PyociError):
        Container.load(rt.new_id(), str(rt.root))
    with pytest.raises(PyociError):
        Container.create(rt.new_id(), str(tmp_path / "no-bundle"), root=str(rt.root))
    with pytest.raises(PyociError):
        Container.create("../escape", str(bundle.path), root=str(rt.root))
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    c = Container.create(cid, str(bundle.path), root=str(rt.root))
    try:
        with pytest.raises(PyociError):
            Container.create(cid, str(bundle.path), root=str(rt.root))
        with pytest.raises(PyociError):
            c.kill("NOT_A_SIGNAL")
        with pytest.raises(PyociError):
            c.delete()  # created, not stopped
        assert c.state()["status"] == "created"
    finally:
        c.delete(force=True)
    assert not (rt.root / cid).exists()


def test_list_of_an_empty_or_missing_root(tmp_path: Path) -> None:
    from pyoci import Container

    assert Container.list(str(tmp_path / "nothing-here")) == []
