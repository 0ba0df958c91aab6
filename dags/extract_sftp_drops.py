"""
### Load the files vendors drop on SFTP

The survey vendor and the outsourced call center upload CSV files (plain, gzip, zip or bz2; any common
encoding and delimiter) into one incoming folder per feed on the SFTP server of connection
`survey_vendor_sftp`. Each file is loaded exactly once (ledger `ops.files`, keyed by sha256), then
moved to the feed's archive folder; an unreadable file goes to the rejected folder with a report
written for the vendor. Feeds are listed in the connection's `extra.feeds`: adding a vendor feed is a
configuration change (README, "Adding an SFTP feed").
"""

from airflow.sdk import CronTriggerTimetable, chain, dag, task
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, START_DATE, raw_asset, scheduled
from crm_warehouse.orchestration.extract import bootstrap_warehouse

SFTP_CONN_ID = "survey_vendor_sftp"
RAW_TABLES = ["sftp_survey_vendor__responses", "sftp_call_center__calls", "sftp_call_center__dispositions"]


@dag(
    dag_id="extract_sftp_drops",
    schedule=scheduled(CronTriggerTimetable("*/30 * * * *", timezone="UTC")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["extract", "sftp"],
    doc_md=__doc__,
)
def extract_sftp_drops():
    @task
    def list_feeds() -> list[str]:
        """The feed names configured on the SFTP connection."""
        from airflow.sdk import BaseHook

        feeds = BaseHook.get_connection(SFTP_CONN_ID).extra_dejson.get("feeds") or {}
        if not feeds:
            raise ValueError(f"Connection {SFTP_CONN_ID!r} lists no feeds: set extra.feeds (README, SFTP feeds)")
        return sorted(feeds)

    @task(outlets=[raw_asset(t) for t in RAW_TABLES], max_active_tis_per_dag=2)
    def load_feed(feed: str) -> dict:
        from crm_warehouse.files import run_feed

        stats = run_feed(feed, conn_id=SFTP_CONN_ID)
        print(f"feed {feed}: {stats}")
        return stats

    chain(bootstrap_warehouse(), load_feed.expand(feed=list_feeds()))


extract_sftp_drops()
