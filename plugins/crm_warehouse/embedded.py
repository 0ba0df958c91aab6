"""An embedded PostgreSQL for the demo: the real server binaries bundled by the `pgserver` wheel,
started by the project itself on loopback TCP, with its data under `.crm/pg/`.

Used only when no warehouse URL is configured (`CRM_WAREHOUSE_URL`). It survives between commands:
`crm warehouse url` starts it again if it was stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DEFAULT_PORT = 54329
DATABASE = "crm"
SYSTEM_USER = "pgserver"  # postgres refuses to run as root; pgserver's convention for that case


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> dict:
    if os.geteuid() != 0:
        return {}
    from pgserver.utils import ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _port_free(port: int) -> bool:
    """Whether PostgreSQL could listen on `port`. It sets SO_REUSEADDR, as the probe does: just after the server
    stopped, the connections it closed (FIN-WAIT-2 until their clients close, then TIME_WAIT) make a plain
    bind report the port busy, and the server would come back on another port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    """A PostgreSQL server in `state_dir` listening on 127.0.0.1 only, trust auth (loopback)."""

    def __init__(self, state_dir: Path | str):
        self.state_dir = Path(state_dir).resolve()
        self.pgdata = self.state_dir / "data"
        self.port_file = self.state_dir / "port"
        self.log = self.state_dir / "postgres.log"

    @property
    def port(self) -> int:
        return int(self.port_file.read_text().strip())

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        ids = _run_as()
        if ids:
            for root, dirs, files in os.walk(path):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), ids["user"], ids["group"])
            os.chown(path, ids["user"], ids["group"])
            # the server user must be able to reach its data directory
            p = path
            while p != p.parent:
                p.chmod(p.stat().st_mode | 0o011)
                p = p.parent

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = subprocess.run([_bin("pg_ctl"), "-D", str(self.pgdata), "status"],
                                capture_output=True, text=True, **_run_as())
        return result.returncode == 0

    def ensure_running(self) -> str:
        """Initialise (first time) and start the server if needed; return the URL of database `crm`."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                shutil.rmtree(self.pgdata)
            self.pgdata.mkdir(parents=True)
            self._chown(self.state_dir)
            subprocess.run([_bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
                            "--locale=C", "-U", "postgres"], check=True, capture_output=True, **_run_as())
        if not self.is_running():
            port = _free_port(self.port if self.port_file.exists() else DEFAULT_PORT)
            self.port_file.write_text(str(port))
            socket_dir = self.state_dir / "run"
            socket_dir.mkdir(exist_ok=True)
            self._chown(self.state_dir)
            opts = f"-h 127.0.0.1 -p {port} -k {socket_dir} -c max_connections=200 -c fsync=off"
            result = subprocess.run(
                [_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "-o", opts, "-l", str(self.log),
                 "start"], capture_output=True, text=True, **_run_as())
            if result.returncode != 0:
                tail = self.log.read_text()[-2000:] if self.log.exists() else result.stderr
                raise RuntimeError(f"The embedded PostgreSQL in {self.pgdata} did not start:\n{tail}\n"
                                   f"Remove {self.state_dir} to start from scratch, or set CRM_WAREHOUSE_URL "
                                   "to use a PostgreSQL server of your own.")
        self._wait_ready()
        self._ensure_database(DATABASE)
        return self.url()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _ensure_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

    def stop(self) -> None:
        if self.is_running():
            subprocess.run([_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
                           check=True, capture_output=True, **_run_as())
