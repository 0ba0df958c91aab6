"""BENCHMARKS.md: one `## <section>` per benchmark, each rewritten whole by its own benchmark's run.

`replace_section` swaps the body of one section (from its `## ` heading to the next `## ` heading) and
leaves every other section as it was; a section not yet in the file is appended.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

HEADER = (
    "# Benchmarks\n\n"
    "Measured by `make bench` (`python -m bench`); each section is rewritten by its own benchmark and the\n"
    "others are left alone. Figures from a shared machine are noisy: every section gives the load average\n"
    "it was measured under.\n"
)


def replace_section(path: str | Path, title: str, body: str) -> None:
    """Write `## title` followed by `body` into `path`, replacing that section only."""
    path = Path(path)
    text = path.read_text() if path.exists() else HEADER
    block = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text.rstrip("\n") + "\n")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _ram_gib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(pg_url: str) -> dict[str, str]:
    """What a reader needs to compare figures: CPUs, RAM, load, PostgreSQL and its durability settings."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        version = conn.execute("show server_version").fetchone()[0]
        fsync = conn.execute("show fsync").fetchone()[0]
        sync_commit = conn.execute("show synchronous_commit").fetchone()[0]
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": f"{nproc} (`nproc`), {_cpu_model()}",
        "ram": f"{_ram_gib():.1f} GiB",
        "load": load_average(),
        "python": platform.python_version(),
        "postgres": f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync_commit})",
    }
