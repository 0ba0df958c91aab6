"""Where things live. Every path can be moved by an environment variable; nothing here does I/O."""

from __future__ import annotations

import os
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
