"""`pyoci events` (runc's command): stats lines in runc's format from the container's cgroup, once with
--stats or every --interval until the container is gone, and an "oom" event when it hits its memory limit
(both hosts: this file runs in the v2 guest too)."""
from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from conftest import Bundle, Runtime, one_line_error, wait_for

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
MiB = 1 << 20


def running(rt: Runtime, bundle: Bundle, resources: dict[str, Any]) -> str:
    bundle.linux["resources"] = resources
    bundle.args("sleep", "60")
    cid = rt.create(bundle, **DETACHED)
    rt.ok("start", cid)
    return cid


def test_stats_once(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle, {"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}})
    try:
        out = rt.ok("events", "--stats", cid).stdout
        assert out.startswith('{"type":"stats","id":"%s","data":{' % cid), out  # runc's order, compact
        (line,) = out.splitlines()
        data = json.loads(line)["data"]
        assert data["memory"]["usage"]["limit"] == 64 * MiB
        assert 0 < data["memory"]["usage"]["usage"] <= 64 * MiB
        assert data["pids"] == {"current": 1, "limit": 50}
        assert data["cpu"]["usage"]["total"] > 0
        assert isinstance(data["memory"]["raw"], dict) and data["memory"]["raw"]
    finally:
        rt.delete(cid)


def test_every_interval_until_the_container_is_gone(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle, {})
    p = subprocess.Popen(rt.argv("events", "--interval", "100ms", cid), stdout=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]  # type: ignore[union-attr]
        assert all(json.loads(x)["type"] == "stats" and json.loads(x)["id"] == cid for x in lines), lines
        t = time.monotonic()
        rt.delete(cid)
        assert p.wait(10) == 0
        assert time.monotonic() - t < 5
    finally:
        p.kill()
        p.wait()
        rt.cmd("delete", "--force", cid)


def test_oom_event(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle, {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})
    p = subprocess.Popen(rt.argv("events", cid), stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())  # type: ignore[union-attr]
        assert first["type"] == "stats"
        rt.ok("exec", "-d", cid, "sh", "-c", "x=$(dd if=/dev/zero bs=1M count=256 2>/dev/null | tr '\\0' x)")
        oom = None
        deadline = time.monotonic() + 30
        while oom is None and time.monotonic() < deadline:
            line = p.stdout.readline()  # type: ignore[union-attr]
            if '"oom"' in line:
                oom = line.strip()
        assert oom == '{"type":"oom","id":"%s"}' % cid
    finally:
        p.kill()
        p.wait()
        rt.cmd("delete", "--force", cid)


def test_mistakes(rt: Runtime, bundle: Bundle) -> None:
    assert "does not exist" in rt.fail("events", "--stats", "nosuch")
    bundle.args("true")
    cid = rt.create(bundle, **DETACHED)
    try:
        r = rt.cmd("events", "--interval", "soon", cid)
        assert r.returncode == 2 and one_line_error(r).startswith("pyoci: --interval 'soon': expected a duration")
        rt.ok("start", cid)
        wait_for(lambda: rt.status(cid) == "stopped", what="the container to stop")
        assert "container not running" in rt.fail("events", cid)
    finally:
        rt.delete(cid)
