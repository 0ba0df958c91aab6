"""
### Extract the website's forms (Typeform Responses API)

Contact, complaint, feedback and callback forms, completed and partial responses, by `since`/`until`
over the run's data interval, deduplicated at the boundary, into `raw.web_forms__responses`.
Connection: `web_forms` (`extra.form_ids`).
"""

from airflow.sdk import CronDataIntervalTimetable, chain, dag
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, START_DATE, scheduled
from crm_warehouse.orchestration.extract import bootstrap_warehouse, stream_tasks


@dag(
    dag_id="extract_web_forms",
    schedule=scheduled(CronDataIntervalTimetable("5 * * * *", timezone="UTC")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "web_forms"],
    doc_md=__doc__,
)
def extract_web_forms():
    chain(bootstrap_warehouse(), stream_tasks("web_forms", ["responses"], conn_id="web_forms"))


extract_web_forms()
