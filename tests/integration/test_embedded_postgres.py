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
