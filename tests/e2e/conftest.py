"""Fixtures the end-to-end tests share (their helpers are in e2e_support.py)."""

from __future__ import annotations

import pytest
from crm_warehouse import runtime


@pytest.fixture(scope="module")
def warehouse(pg_server_url):
    """A new database for the module's warehouse, dropped afterwards. Yields its URL."""
    url = runtime.create_database(pg_server_url, "crm_e2e")
    yield url
    runtime.drop_database(pg_server_url, url)


@pytest.fixture(scope="module")
def world_dir(request, tmp_path_factory):
    """The sandbox world of the test module's `WORLD` (generate() arguments), generated once per module."""
    from sandbox.world import generate

    path = tmp_path_factory.mktemp("world")
    generate(path, **request.module.WORLD)
    return path
