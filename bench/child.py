"""Run one contender in its own process and measure it from outside: wall time, CPU time and peak
resident memory (the child's VmHWM, read while it runs; `ru_maxrss` from `wait4` if it could not be read), plus
the JSON line it prints last."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ChildResult:
    name: str
    returncode: int
    wall: float  # the whole process, start-up included
    cpu: float  # user + sys of the child
    peak_rss_mb: float
    report: dict = field(default_factory=dict)  # what the child printed (its own timed section)
    parent_cpu: float = 0.0  # CPU the benchmark process spent meanwhile (the sandbox's vendor servers)
    load: str = ""
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.report)


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM, kB), 0 when it cannot be read (gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_child(name: str, argv: list[str], env: dict[str, str], log_dir: Path, timeout: float = 3600) -> ChildResult:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    out_path = log_dir / f"{name}.out"
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with open(log_path, "wb") as err, open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        deadline = started + timeout
        hwm_kb = 0
        while True:
            hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    report: dict = {}
    for line in reversed(out_path.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            break
    from bench.report import load_average

    return ChildResult(
        name=name, returncode=proc.returncode, wall=wall, cpu=usage.ru_utime + usage.ru_stime,
        # ru_maxrss counts the pages the child shared with this process between fork and exec: after the
        # benchmark generated a big world in-process, every child "peaked" at the benchmark's own size. The
        # child's VmHWM, read while it runs, starts afresh at exec; ru_maxrss only when it was never read.
        peak_rss_mb=(hwm_kb or usage.ru_maxrss) / 1024, report=report,
        parent_cpu=(self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime),
        load=load_average(), log=str(log_path),
    )
