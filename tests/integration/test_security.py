"""Security, tested by trying what must be refused: each PostgreSQL role attempts what it must not do;
the SFTP client meets a server whose host key it does not know; the HTTP client is asked to send
credentials in plain text to another machine; and the package's SQL is checked for text pasted into
statements (identifiers go through psycopg.sql, values are bound)."""

from __future__ import annotations

import ast
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.files import run_feed
from crm_warehouse.http import InsecureTransport
from crm_warehouse.load import Record, ensure_ops_tables, ensure_raw_table, write_batch
from crm_warehouse.load.ddl import forget_ready
from crm_warehouse.sources import web_forms
from crm_warehouse.sources.base import ConnInfo

from sandbox import world as W
from sandbox.serve import Sandbox

ROOT = Path(__file__).resolve().parents[2]
DENIED = psycopg.errors.InsufficientPrivilege

# --- (a) least privilege in PostgreSQL ---------------------------------------------------------------


@contextmanager
def as_role(url: str, role: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(role)))
        yield conn


def denied(conn: psycopg.Connection, statement: str) -> bool:
    """True when PostgreSQL refuses `statement` for lack of privilege (anything else fails the test)."""
    try:
        conn.execute(statement)
    except DENIED:
        return True
    return False


@pytest.fixture
def warehouse(fresh_db):
    """A bootstrapped warehouse where each role made what it owns: the loader a raw table (through the
    real loader), the transformer a staging view and a published mart."""
    forget_ready()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        bootstrap(conn)
    with as_role(fresh_db, "crm_loader") as conn:
        ensure_ops_tables(conn)
        ensure_raw_table(conn, "web_forms", "responses")
        with conn.transaction():
            write_batch(conn, "web_forms", "responses", [Record({"token": "t1", "email": "a@example.com"})],
                        key="token")
    with as_role(fresh_db, "crm_transformer") as conn:
        conn.execute("create view staging.stg_web_forms__responses as select record_key as token, payload "
                     "from raw.web_forms__responses")
        conn.execute("create table marts.dim_customers as select token as customer_id from "
                     "staging.stg_web_forms__responses")
        conn.execute("create table intermediate.int_identifiers_unioned (identifier text)")
    yield fresh_db
    forget_ready()


def test_the_loader_writes_raw_and_ops_only(warehouse):
    with as_role(warehouse, "crm_loader") as conn:
        assert conn.execute("select count(*) from raw.web_forms__responses").fetchone()[0] == 1
        assert conn.execute("select count(*) from ops.batches").fetchone()[0] == 1
        refused = {
            "create in staging": denied(conn, "create table staging.evil (x int)"),
            "create in intermediate": denied(conn, "create table intermediate.evil (x int)"),
            "create in marts": denied(conn, "create table marts.evil (x int)"),
            "create in marts_build": denied(conn, "create table marts_build.evil (x int)"),
            "create in public": denied(conn, "create table public.evil (x int)"),
            "read staging": denied(conn, "select * from staging.stg_web_forms__responses"),
            "read marts": denied(conn, "select * from marts.dim_customers"),
            "write marts": denied(conn, "insert into marts.dim_customers values ('x')"),
            "drop a mart": denied(conn, "drop table marts.dim_customers"),
            "create a role": denied(conn, "create role evil"),
        }
    assert all(refused.values()), [k for k, v in refused.items() if not v]


def test_the_transformer_reads_raw_and_owns_staging_and_marts_but_cannot_write_raw(warehouse):
    with as_role(warehouse, "crm_transformer") as conn:
        # what it must be able to do: read what the loader landed (tables the loader created)
        assert conn.execute("select count(*) from staging.stg_web_forms__responses").fetchone()[0] == 1
        conn.execute("create table marts_build.dim_customers as select * from marts.dim_customers")
        refused = {
            "insert raw": denied(conn, "insert into raw.web_forms__responses (record_key, content_hash, payload, "
                                       "batch_id) values ('x', 'x', '{}', 1)"),
            "update raw": denied(conn, "update raw.web_forms__responses set payload = '{}'"),
            "delete raw": denied(conn, "delete from raw.web_forms__responses"),
            "truncate raw": denied(conn, "truncate raw.web_forms__responses"),
            "drop raw": denied(conn, "drop table raw.web_forms__responses"),
            "create in raw": denied(conn, "create table raw.evil (x int)"),
            "write ops": denied(conn, "delete from ops.batches"),
            "create in public": denied(conn, "create table public.evil (x int)"),
        }
    assert all(refused.values()), [k for k, v in refused.items() if not v]


def test_bi_reader_reads_the_published_marts_only(warehouse):
    with as_role(warehouse, "bi_reader") as conn:
        assert conn.execute("select customer_id from marts.dim_customers").fetchall() == [("t1",)]
        refused = {
            "read raw": denied(conn, "select * from raw.web_forms__responses"),
            "read ops": denied(conn, "select * from ops.batches"),
            "read staging": denied(conn, "select * from staging.stg_web_forms__responses"),
            "read intermediate": denied(conn, "select * from intermediate.int_identifiers_unioned"),
            "read marts_build": denied(conn, "select * from marts_build.dim_customers"),
            "write marts": denied(conn, "insert into marts.dim_customers values ('x')"),
            "delete marts": denied(conn, "delete from marts.dim_customers"),
            "create in marts": denied(conn, "create table marts.evil (x int)"),
            "create in public": denied(conn, "create table public.evil (x int)"),
            "drop a mart": denied(conn, "drop table marts.dim_customers"),
        }
    assert all(refused.values()), [k for k, v in refused.items() if not v]


# --- (b) SFTP refuses an unknown host key ------------------------------------------------------------

START = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture
def sb(tmp_path, monkeypatch):
    W.generate(tmp_path, seed=5, customers=300, days=2)
    sandbox = Sandbox(tmp_path, clock=START + timedelta(days=2), sftp=True).start()
    forget_ready()
    yield sandbox
    sandbox.stop()


def _random_host_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _incoming(sb) -> set[str]:
    root = sb.sftp_server.root
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"host_key": "random"}, ConnectionRefusedError, "host key"),
    ({"host_key": None}, ValueError, "no extra.host_key"),
    ({"no_host_key_check": True}, ValueError, "disables host key checking"),
    ({"allow_host_key_change": "true"}, ValueError, "disables host key checking"),
])
def test_sftp_refuses_a_server_whose_host_key_it_does_not_know(sb, fresh_db, monkeypatch, change, error, match):
    conn = sb.connections["survey_vendor_sftp"]
    extra = dict(conn["extra"], conn_retry_attempts=1)
    for key, value in change.items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = _random_host_key() if value == "random" else value
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(dict(conn, extra=extra)))
    before = _incoming(sb)
    assert before, "the sandbox dropped no files"
    with pytest.raises(error, match=match):
        run_feed("survey_vendor", warehouse_url=fresh_db)
    assert _incoming(sb) == before, "files were moved although the server was not trusted"
    with psycopg.connect(fresh_db) as db:
        if db.execute("select to_regclass('raw.sftp_survey_vendor__responses')").fetchone()[0] is not None:
            assert db.execute("select count(*) from raw.sftp_survey_vendor__responses").fetchone()[0] == 0
    # the same server with its real key is accepted
    monkeypatch.setenv("AIRFLOW_CONN_SURVEY_VENDOR_SFTP", json.dumps(conn))
    assert run_feed("survey_vendor", warehouse_url=fresh_db)["files_loaded"] >= 1


# --- (c) no credentials in plain text to another machine ---------------------------------------------


@pytest.fixture
def proxy():
    """A loopback HTTP server that also serves as the HTTP proxy: it records every request it gets
    (absolute-form URLs are what a client sends through a proxy to another host)."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            body = json.dumps({"items": [], "next_page_uri": "http://vendor.example/steal"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _client(base: str, proxy_url: str, extra: dict | None = None):
    client = web_forms.make_client(ConnInfo("web_forms", base, None, "s3cret-token", extra or {}), None)
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"http": proxy_url, "https": proxy_url}
    client.session = session
    return client


def test_http_refuses_plain_text_credentials_to_another_host_unless_configured(proxy):
    url, seen = proxy
    client = _client("http://vendor.example", url)
    refusal = r"'web_forms'.*http://vendor\.example.*extra\.allow_insecure_http"
    with pytest.raises(InsecureTransport, match=refusal) as info:
        client.get_json("/forms/F1/responses")
    assert seen == [], "the request left although it carried credentials in plain text"
    assert "s3cret-token" not in str(info.value)

    allowed = _client("http://vendor.example", url, {"allow_insecure_http": True})
    allowed.get_json("/forms/F1/responses")
    assert seen == [{"path": "http://vendor.example/forms/F1/responses", "authorization": "Bearer s3cret-token"}]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_http_to_this_machine_is_allowed_but_a_link_to_another_host_is_not(proxy, host):
    url, seen = proxy
    port = url.rsplit(":", 1)[1]
    client = _client(f"http://{host}:{port}", url)
    client.session.proxies = {}
    from crm_warehouse.http import NextUrlPaginator

    pages = client.paginate("/forms/F1/responses", paginator=NextUrlPaginator("next_page_uri"),
                            records_path="items")
    with pytest.raises(InsecureTransport, match="vendor.example"):
        list(pages)
    assert [s["path"] for s in seen] == ["/forms/F1/responses"]  # the link to vendor.example was not followed


# --- (d) no SQL built by pasting text -----------------------------------------------------------------

SINKS = {"execute", "executemany", "copy"}
HANDLES = {"self", "conn", "cur", "cursor", "connection"}  # database handles, not text


def _names(node: ast.AST) -> set[str]:
    """Names whose text could end up in the SQL of `node` (not those that only choose between literals,
    filter, or are wrapped by sql.Identifier / sql.Literal)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
            "Identifier", "Literal", "SQL"):  # sql.SQL(text) is checked on its own, as a sink
        return set()
    if isinstance(node, ast.IfExp):
        return _names(node.body) | _names(node.orelse)
    if isinstance(node, ast.Subscript):  # CONSTANT_QUERIES[key]: the text comes from the constant
        return _names(node.value)
    if isinstance(node, ast.comprehension):
        return _names(node.iter)
    if isinstance(node, ast.Name):
        return {node.id}
    out: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func and isinstance(child, ast.Attribute):
            out |= _names(child.value)
            continue
        out |= _names(child)
    return out


def _tainted(func: ast.FunctionDef, expr: ast.AST) -> set[str]:
    """The parameters of `func` (other than database handles) whose text flows into `expr`, following
    assignments to local names."""
    params = {a.arg for a in [*func.args.args, *func.args.kwonlyargs]} - HANDLES
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        assigned.setdefault(name.id, []).append(node.value)
        elif isinstance(node, ast.For):
            for name in ast.walk(node.target):
                if isinstance(name, ast.Name):
                    assigned.setdefault(name.id, []).append(node.iter)
    found, todo, done = set(), list(_names(expr)), set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        if name in params:
            found.add(name)
        for value in assigned.get(name, []):
            todo.extend(_names(value))
    return found


def _sql_text_args(tree: ast.AST) -> Iterator[tuple[ast.FunctionDef, ast.AST, int]]:
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            arg = node.args[0]
            if node.func.attr == "SQL":
                yield func, arg, node.lineno
            elif node.func.attr in SINKS and not (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                                                   and arg.func.attr in ("format", "join", "SQL", "Composed")):
                yield func, arg, node.lineno


def _callers_pass_constants(trees: dict[Path, ast.AST], func: ast.FunctionDef, param: str) -> bool:
    """Every call of `func` (by name, anywhere in the package) passes a literal or an UPPER_CASE constant
    (or sql.SQL of one) for `param`."""
    names = [a.arg for a in func.args.args]
    index = names.index(param) if param in names else None
    calls = 0
    for tree in trees.values():
        defines = any(node is func for node in ast.walk(tree))
        imports = any(isinstance(node, ast.ImportFrom) and any(a.name == func.name for a in node.names)
                      for node in ast.walk(tree))
        if not (defines or imports):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if callee != func.name:
                continue
            calls += 1
            value = next((k.value for k in node.keywords if k.arg == param), None)
            if value is None and index is not None and index < len(node.args):
                value = node.args[index]
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "format":
                value = value.func.value  # sql.SQL(CONSTANT).format(sql.Identifier(...)): composed, not pasted
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "SQL":
                value = value.args[0] if value.args else None
            constant = isinstance(value, ast.Constant) and isinstance(value.value, str) or (
                isinstance(value, ast.Name) and value.id.isupper())
            if not constant:
                return False
    return calls > 0


def test_no_sql_in_the_package_is_built_from_text_passed_in():
    """SQL text is made of literals and module constants; anything passed in (names, values) reaches a
    statement through sql.Identifier / sql.Literal or as a bound parameter. A function that takes a whole
    query as a parameter is allowed when every caller passes a constant."""
    files = sorted((ROOT / "plugins" / "crm_warehouse").rglob("*.py"))
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    problems = []
    checked = 0
    for path, tree in trees.items():
        for func, arg, line in _sql_text_args(tree):
            checked += 1
            for param in sorted(_tainted(func, arg)):
                passthrough = isinstance(arg, ast.Name) and arg.id == param
                if passthrough and _callers_pass_constants(trees, func, param):
                    continue
                problems.append(f"{path.relative_to(ROOT)}:{line} {func.name}(): parameter {param!r} is pasted "
                                "into SQL text; quote it with psycopg.sql.Identifier or bind it as a value")
    assert checked > 30, "the scan found almost no SQL: is it looking at the right files?"
    assert problems == []


def test_the_sql_scan_catches_pasted_text():
    """The scan above can fail: it flags the patterns it exists to catch."""
    bad = ast.parse('''
def by_fstring(conn, table):
    conn.execute(f"select * from {table}")

def by_format(conn, source, stream):
    name = "raw.{}__{}".format(source, stream)
    conn.execute("delete from " + name)

def by_sql(conn, where):
    conn.execute(sql.SQL("select 1 where " + where))

def fine(conn, table, value):
    conn.execute(sql.SQL("select * from {} where x = %s").format(sql.Identifier(table)), (value,))
    conn.execute(f"select * from {TABLE} where y = %s", (value,))
''')
    flagged = {(f.name, p) for f, arg, _ in _sql_text_args(bad) for p in _tainted(f, arg)}
    assert flagged == {("by_fstring", "table"), ("by_format", "source"), ("by_format", "stream"),
                       ("by_sql", "where")}
