"""
### Extract the survey vendor's responses (Qualtrics export API)

Starts an export per survey for the run's data interval, polls it, downloads the zip and lands the
responses in `raw.survey_vendor__responses`. Connection: `survey_vendor` (`extra.survey_ids`).
Files the vendor drops on SFTP are loaded by `extract_sftp_drops`.
"""

from airflow.sdk import CronDataIntervalTimetable, chain, dag
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, START_DATE, scheduled
from crm_warehouse.orchestration.extract import bootstrap_warehouse, stream_tasks


@dag(
    dag_id="extract_survey_vendor",
    schedule=scheduled(CronDataIntervalTimetable("30 1 * * *", timezone="UTC")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "survey_vendor"],
    doc_md=__doc__,
)
def extract_survey_vendor():
    chain(bootstrap_warehouse(), stream_tasks("survey_vendor", ["responses"], conn_id="survey_vendor"))


extract_survey_vendor()
