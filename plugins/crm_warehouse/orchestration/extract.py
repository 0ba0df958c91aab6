"""Build an extract DAG's tasks: bootstrap the warehouse, then one task per stream, each publishing the
Asset of its raw table. Called from the DAG files, which only declare."""

from __future__ import annotations

from airflow.sdk import TaskGroup, chain, task

from crm_warehouse.orchestration.dag_support import raw_asset, window_from_context


@task(task_id="bootstrap_warehouse")
def bootstrap_warehouse() -> str:
    """Create schemas and roles if missing (idempotent)."""
    from crm_warehouse.bootstrap import bootstrap
    from crm_warehouse.warehouse import connect

    with connect() as conn:
        bootstrap(conn)
    return "ok"


def stream_tasks(source: str, streams: list[str], *, conn_id: str) -> list:
    """One task per stream of `source`, in order (later streams may read what earlier ones saved)."""
    tasks = []
    with TaskGroup(group_id=source):
        for stream in streams:
            @task(task_id=stream, outlets=[raw_asset(f"{source}__{stream}")])
            def extract_stream(source: str = source, stream: str = stream, conn_id: str = conn_id, **context):
                from crm_warehouse.sources import run_stream

                start, end = window_from_context(context)
                stats = run_stream(source, stream, start, end, conn_id=conn_id)
                print(f"{source}.{stream} [{start.isoformat()}, {end.isoformat()}): {stats}")
                return stats

            tasks.append(extract_stream())
    chain(*tasks)
    return tasks
