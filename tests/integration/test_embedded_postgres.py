import psycopg
from crm_warehouse.embedded import EmbeddedPostgres


def test_embedded_server_starts_stops_and_restarts_on_the_same_port(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.ensure_running()
    try:
        with psycopg.connect(url) as conn:
            conn.execute("create table t (x int)")
            conn.execute("insert into t values (42)")
        port = server.port
        server.stop()
        assert not server.is_running()
        assert server.ensure_running() == url and server.port == port
        with psycopg.connect(url) as conn:
            assert conn.execute("select x from t").fetchone() == (42,)
    finally:
        server.stop()


def test_restarts_on_the_same_port_while_its_closed_connections_linger(tmp_path):
    """A server stopped under a connection its client has not closed yet (a task that lost the warehouse mid-load)
    leaves the port with a half-closed socket (FIN-WAIT-2, then TIME_WAIT); PostgreSQL can listen there again
    (SO_REUSEADDR) and must come back on the port clients know."""
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.ensure_running()
    try:
        port = server.port
        client = psycopg.connect(url)
        client.execute("select 1")
        server.stop()
        try:
            assert server.ensure_running() == url and server.port == port
            with psycopg.connect(url) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        finally:
            client.close()
    finally:
        server.stop()
