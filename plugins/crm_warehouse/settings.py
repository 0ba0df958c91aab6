"""Where things live. Every path can be moved by an environment variable; nothing here does I/O."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def crm_home() -> Path:
    """Local state of a run (embedded PostgreSQL, Airflow home, docs, sandbox world): `CRM_HOME`,
    default `.crm/` in the project."""
    return Path(os.environ.get("CRM_HOME") or PROJECT_ROOT / ".crm").resolve()


def dbt_project_dir() -> Path:
    return Path(os.environ.get("CRM_DBT_PROJECT_DIR") or PROJECT_ROOT / "dbt_project").resolve()


def docs_dir() -> Path:
    """Static sites built by every transform run: dbt docs, Great Expectations Data Docs, the report."""
    return Path(os.environ.get("CRM_DOCS_DIR") or crm_home() / "docs").resolve()


def expectations_dir() -> Path:
    return Path(os.environ.get("CRM_EXPECTATIONS_DIR") or PROJECT_ROOT / "expectations").resolve()


def download_dir() -> str | None:
    """Where SFTP downloads are staged while they are hashed and read: `CRM_DOWNLOAD_DIR`, else the
    system's temporary folder (None). It needs room for the largest file of a feed."""
    return os.environ.get("CRM_DOWNLOAD_DIR") or None


def dbt_env(url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a dbt command needs to reach the warehouse at `url` (a PostgreSQL URL or conninfo): the
    `CRM_PG_*` variables dbt_project/profiles.yml reads, on top of `base` (default: this process's), with dbt's
    usage statistics off."""
    from psycopg.conninfo import conninfo_to_dict  # psycopg is imported only by what connects

    parts = conninfo_to_dict(url)
    return {
        **(os.environ if base is None else base),
        "CRM_PG_HOST": str(parts.get("host") or "127.0.0.1"),
        "CRM_PG_PORT": str(parts.get("port") or "5432"),
        "CRM_PG_USER": str(parts.get("user") or "postgres"),
        "CRM_PG_PASSWORD": str(parts.get("password") or ""),
        "CRM_PG_DBNAME": str(parts.get("dbname") or "crm"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
