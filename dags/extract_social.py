"""
### Extract social networks: X mentions, Facebook page comments, LinkedIn organisation comments

Runs every 15 minutes so that X's 800-mention horizon is never overrun. Each network has its own
connection (`social_x`, `social_facebook`, `social_linkedin`) and its own task group, so a rate limit
on one does not hold up the others.
"""

from airflow.sdk import CronDataIntervalTimetable, dag
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, START_DATE, scheduled
from crm_warehouse.orchestration.extract import bootstrap_warehouse, stream_tasks

NETWORKS = {
    "social_x": ["mentions", "users"],
    "social_facebook": ["posts", "comments"],
    "social_linkedin": ["posts", "comments"],
}


@dag(
    dag_id="extract_social",
    schedule=scheduled(CronDataIntervalTimetable("*/15 * * * *", timezone="UTC")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "social"],
    doc_md=__doc__,
)
def extract_social():
    boot = bootstrap_warehouse()
    for source, streams in NETWORKS.items():
        boot >> stream_tasks(source, streams, conn_id=source)[0]


extract_social()
