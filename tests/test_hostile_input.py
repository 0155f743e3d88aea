"""Hostile or huge input: a one-line error naming the problem, bounded memory, nothing created (issue 8, part 4)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import Bundle, Runtime, one_line_error


def _both(rt: Runtime, bundle: Bundle) -> tuple[str, str]:
    """The errors of create and of validate for the bundle as it is on disk."""
    t = time.monotonic()
    err = one_line_error(rt.cmd("create", "--bundle", bundle.path, rt.new_id()))
    v = rt.cmd("validate", cwd=bundle.path)
    assert v.returncode != 0
    assert time.monotonic() - t < 20
    return err, v.stdout + v.stderr


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge"])
def test_config_that_is_not_a_bounded_file_is_refused(rt: Runtime, bundle: Bundle, kind: str) -> None:
    cfg = bundle.path / "config.json"
    cfg.unlink(missing_ok=True)
    if kind == "dev-zero":
        cfg.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(cfg)
    else:
        with open(cfg, "wb") as f:  # sparse: 3 GB that cost nothing on disk
            f.truncate(3 << 30)
    err, verr = _both(rt, bundle)
    expect = "more than pyoci reads" if kind == "huge" else "not a regular file"
    assert expect in err and expect in verr


def _write_raw(bundle: Bundle, text: str) -> None:
    (bundle.path / "config.json").write_text(text)


def test_deep_nesting_is_a_clear_error(rt: Runtime, bundle: Bundle) -> None:
    bundle.save()
    text = (bundle.path / "config.json").read_text()
    _write_raw(bundle, text[:-1].rstrip().rstrip("}") + ', "x-deep": ' + "[" * 10000 + "]" * 10000 + "}")
    err, verr = _both(rt, bundle)
    assert "nested deeper than" in err and "nested deeper than" in verr
    assert "Recursion" not in err + verr


@pytest.mark.parametrize("field,edit", [
    ("process.cwd", lambda c: c["process"].update(cwd="/a\0b")),
    ("process.args[1]", lambda c: c["process"].update(args=["sh", "-c\0x"])),
    ("hooks.prestart[0].path", lambda c: c.update(hooks={"prestart": [{"path": "/bin/true\0"}]})),
    ("linux.cgroupsPath", lambda c: c["linux"].update(cgroupsPath="/a\0b")),
    ("mounts[0].options[0]", lambda c: c["mounts"][0].update(options=["nosuid\0"])),
    ("linux.maskedPaths[0]", lambda c: c["linux"].update(maskedPaths=["/proc/kcore\0"])),
])
def test_nul_bytes_are_named(rt: Runtime, bundle: Bundle, field: str, edit) -> None:  # type: ignore[no-untyped-def]
    edit(bundle.config)
    bundle.save()
    err, verr = _both(rt, bundle)
    assert "%s: contains a NUL byte" % field in err
    assert field in verr and "NUL" in verr


def test_kubernetes_sized_annotations_work(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """256 KiB of annotations (Kubernetes' limit) reach every hook's state and `state`."""
    out = tmp_path / "hookstate"
    bundle.config["annotations"] = {"k%03d" % i: "v" * 1020 for i in range(256)}
    bundle.args("true")
    bundle.hook("createContainer", "/bin/sh", "sh", "-c", "cat > %s" % out)
    with rt.container(bundle) as cid:
        assert len(rt.state(cid)["annotations"]) == 256
        assert len(json.loads(out.read_text())["annotations"]) == 256
        rt.ok("start", cid)


def test_too_long_id_is_named(rt: Runtime, bundle: Bundle) -> None:
    bundle.save()
    err = one_line_error(rt.cmd("create", "--bundle", bundle.path, "a" * 300))
    assert "invalid container id" in err and "300 characters" in err and "--root" not in err
