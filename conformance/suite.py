"""Running the cases against one or more runtimes, in parallel, each in a private --root."""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .core import Case, Result, all_cases, mountpoints_under, release_mounts_under, run_case
from .rootfs import build_base_rootfs


@dataclass
class RuntimeSpec:
    name: str
    path: str
    cleanup_path: str | None = None     # runtime used for cleanup when not `path` (selftest)


def runtime_specs(paths: list[str]) -> list[RuntimeSpec]:
    """Name each runtime after its binary (pyoci, runc); disambiguate duplicates."""
    out: list[RuntimeSpec] = []
    seen: dict[str, int] = {}
    for p in paths:
        resolved = shutil.which(p) or p
        name = os.path.basename(resolved.rstrip("/")) or resolved
        if name in seen:
            seen[name] += 1
            name = f"{name}#{seen[name]}"
        else:
            seen[name] = 1
        out.append(RuntimeSpec(name, os.path.abspath(resolved)))
    return out


def select_cases(patterns: list[str] | None) -> list[Case]:
    cases = all_cases()
    if not patterns:
        return cases
    out = []
    for c in cases:
        for pat in patterns:
            if any(ch in pat for ch in "*?[") and fnmatch.fnmatch(c.id, pat) or \
                    pat in c.id or pat in c.section:
                out.append(c)
                break
    return out


def run_suite(runtimes: list[RuntimeSpec], cases: list[Case], *, jobs: int = 4,
              rootfs: Path | None = None, keep: bool = False,
              progress: Callable[[Result], None] | None = None,
              workdir: Path | None = None) -> dict[str, dict[str, Result]]:
    """Run every case against every runtime. Returns {runtime name: {case id: Result}}."""
    pairs = [(c, rt) for c in cases for rt in runtimes]
    flat = run_pairs(pairs, jobs=jobs, rootfs=rootfs, keep=keep, progress=progress, workdir=workdir)
    out: dict[str, dict[str, Result]] = {rt.name: {} for rt in runtimes}
    for (c, rt), res in zip(pairs, flat):
        out[rt.name][c.id] = res
    return out


def run_pairs(pairs: list[tuple[Case, RuntimeSpec]], *, jobs: int = 4, rootfs: Path | None = None,
              keep: bool = False, progress: Callable[[Result], None] | None = None,
              workdir: Path | None = None) -> list[Result]:
    """Run each (case, runtime) pair; every runtime gets its own private --root."""
    work = Path(tempfile.mkdtemp(prefix="ocicf-", dir=str(workdir) if workdir else None))
    os.chmod(work, 0o755)   # user-namespaced containers must traverse it
    try:
        base = build_base_rootfs(work / "rootfs", rootfs)
        roots: dict[str, Path] = {}
        lock = threading.Lock()
        jobs_list = []
        for i, (c, rt) in enumerate(pairs):
            if rt.path not in roots:
                roots[rt.path] = work / f"r{len(roots)}" / "root"
                roots[rt.path].mkdir(parents=True)
            jobs_list.append((c, rt, roots[rt.path], roots[rt.path].parent / f"c{i}"))

        def one(job):
            c, rt, root, cdir = job
            res = run_case(c, rt.path, root, cdir, base, rt.name, keep=keep,
                           cleanup_runtime=rt.cleanup_path)
            if progress:
                with lock:
                    progress(res)
            return res

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, jobs_list))
    finally:
        if keep:
            print(f"work directory kept: {work}")
        else:
            release_mounts_under(work)
            if not mountpoints_under(work):
                shutil.rmtree(work, ignore_errors=True)
