"""Fixtures the end-to-end tests share (their helpers are in e2e_support.py)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql


@pytest.fixture(scope="module")
def warehouse(pg_server_url):
    """A new database for the module's warehouse, dropped afterwards. Yields its URL."""
    name = f"crm_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    yield pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
