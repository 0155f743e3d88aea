"""Wall time of pyoci against runc, measured in one run on the same bundle: `run` of `true`, and a
create/start/delete cycle. Prints medians and the ratio. Run as root: `make bench` or
`.venv/bin/python bench/bench.py [-n 30]`."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)


def bundle(tmp: str, args: list[str]) -> str:
    path = os.path.join(tmp, "bundle-" + args[0])
    os.makedirs(path)
    with open(os.path.join(TOP, "bundles", "busybox", "config.json")) as f:
        config = json.load(f)
    config["process"]["args"] = args
    config["root"] = {"path": os.path.join(TOP, "bundles", "busybox", "rootfs"), "readonly": True}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def timed(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_run(runtime: list[str], root: str, path: str, n: int) -> list[float]:
    return [timed(runtime + ["--root", root, "run", "b" + uuid.uuid4().hex[:12]], path) for _ in range(n)]


def bench_cycle(runtime: list[str], root: str, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        cid = "c" + uuid.uuid4().hex[:12]
        base = runtime + ["--root", root]
        start = time.perf_counter()
        subprocess.run(base + ["create", cid], cwd=path, check=True)
        subprocess.run(base + ["start", cid], check=True)
        while json.loads(subprocess.run(base + ["state", cid], check=True, capture_output=True).stdout)[
                "status"] != "stopped":
            time.sleep(0.001)
        subprocess.run(base + ["delete", cid], check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20, help="iterations per measurement")
    ap.add_argument("--pyoci", default=shutil.which("pyoci", path=os.path.dirname(sys.executable)) or "pyoci")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyoci-bench-") as tmp:
        path = bundle(tmp, ["true"])
        results = {}
        for name, cmd in (("runc", [opts.runc]), ("pyoci", [opts.pyoci])):
            root = os.path.join(tmp, "root-" + name)
            bench_run(cmd, root, path, 2)  # warm caches
            results[name] = {"run": bench_run(cmd, root, path, opts.n),
                             "create/start/delete": bench_cycle(cmd, root, path, opts.n)}
    print("%-22s %10s %10s %8s" % ("benchmark (median)", "runc ms", "pyoci ms", "ratio"))
    for key in ("run", "create/start/delete"):
        r = statistics.median(results["runc"][key]) * 1000
        p = statistics.median(results["pyoci"][key]) * 1000
        print("%-22s %10.1f %10.1f %7.2fx" % (key, r, p, p / r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
