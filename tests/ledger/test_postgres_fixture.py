import psycopg


def test_each_test_gets_its_own_empty_database(postgres_url: str, postgres_server) -> None:
    other = postgres_server.create_database()
    assert other != postgres_url
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(other) as conn:
        rows = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone()
        assert rows == (0,)
