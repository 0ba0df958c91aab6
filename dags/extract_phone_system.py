"""
### Extract the phone system (Twilio Voice API)

Calls (`raw.phone_system__calls`) and the contact center's agent wrap-ups
(`raw.phone_system__dispositions`), incrementally over the run's data interval, with a one-day
lookback because Twilio filters by whole days. Connection: `phone_system` (see README).

Backfill or re-run any range: trigger with conf `{"window_start": "...", "window_end": "..."}`.
"""

from airflow.sdk import CronDataIntervalTimetable, chain, dag
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, START_DATE, scheduled
from crm_warehouse.orchestration.extract import bootstrap_warehouse, stream_tasks


@dag(
    dag_id="extract_phone_system",
    schedule=scheduled(CronDataIntervalTimetable("15 * * * *", timezone="UTC")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "phone_system"],
    doc_md=__doc__,
)
def extract_phone_system():
    chain(bootstrap_warehouse(), stream_tasks("phone_system", ["calls", "dispositions"], conn_id="phone_system"))


extract_phone_system()
