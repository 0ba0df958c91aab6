"""
### Transform, audit and publish the warehouse

Runs when any raw table changes (Assets published by the extract DAGs) and daily as a floor:

1. `enrich`: normalise new phone numbers (E.164, `phonenumbers`) and score new social texts (VADER);
2. `dbt`: staging, identity resolution, complaints and marts, built into schema `marts_build`, one
   task per model (`dbt run`), through Cosmos;
3. `quality_gate`: every dbt data test (one `dbt test`) and the Great Expectations suites from
   `expectations/` on raw and `marts_build`; a critical failure stops here, the task fails naming each
   failed check with its rows and the Data Docs, and BI keeps reading the previous `marts`;
4. `publish`: `marts_build` becomes `marts` in one transaction (what `bi_reader` sees);
5. `insight_report` and `dbt_docs`: the manager's report, dbt docs (Data Docs come from the gate), as
   static sites (`crm docs` serves them).
"""

import sys
from pathlib import Path

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, chain, dag, task
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtDocsLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, MARTS_ASSET, START_DATE, raw_asset, scheduled
from crm_warehouse.orchestration.docs import publish_dbt_docs
from crm_warehouse.orchestration.extract import bootstrap_warehouse
from crm_warehouse.settings import dbt_project_dir

DBT_DIR = dbt_project_dir()
MANIFEST = DBT_DIR / "target" / "manifest.json"
RAW_TABLES = [
    "phone_system__calls", "phone_system__dispositions", "survey_vendor__responses", "web_forms__responses",
    "social_x__mentions", "social_facebook__comments", "social_linkedin__comments",
    "sftp_survey_vendor__responses", "sftp_call_center__calls", "sftp_call_center__dispositions",
]
PROFILE = ProfileConfig(
    profile_name="crm_warehouse",
    target_name="crm",
    profile_mapping=PostgresUserPasswordProfileMapping(conn_id="warehouse",
                                                       profile_args={"schema": "staging", "threads": 2}),
)


@dag(
    dag_id="transform_warehouse",
    schedule=scheduled(AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 5 * * *", timezone="UTC"),
        assets=AssetAny(*[raw_asset(t) for t in RAW_TABLES]),
    )),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["transform", "dbt", "quality"],
    doc_md=__doc__,
)
def transform_warehouse():
    @task
    def enrich() -> dict:
        from crm_warehouse.enrich import run_all
        from crm_warehouse.warehouse import connect

        with connect() as conn:
            return run_all(conn)

    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(DBT_DIR, manifest_path=MANIFEST if MANIFEST.exists() else None,
                                     install_dbt_deps=False),
        profile_config=PROFILE,
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST if MANIFEST.exists() else LoadMode.AUTOMATIC,
            # models only: dbt's data tests run in the quality gate, so a failing test gives the gate's verdict
            # (every failed check, its rows, the Data Docs) instead of failing a model's task before the gate
            test_behavior=TestBehavior.NONE,
            invocation_mode=InvocationMode.DBT_RUNNER,
        ),
        execution_config=ExecutionConfig(dbt_executable_path=str(Path(sys.executable).parent / "dbt"),
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        # `{"full_refresh": true}` in the run's conf rebuilds incremental models from scratch (after an upgrade
        # that changes their logic); every other run is incremental
        operator_args={"install_deps": False,
                       "full_refresh": "{{ (dag_run.conf or {}).get('full_refresh', False) }}"},
    )

    @task
    def quality_gate(**context) -> dict:
        from crm_warehouse.orchestration.dag_support import run_end_from_context
        from crm_warehouse.quality.dbt_tests import run_dbt_tests
        from crm_warehouse.quality.gate import run_gate
        from crm_warehouse.quality.notify import notify_gate_warnings
        from crm_warehouse.settings import docs_dir
        from crm_warehouse.warehouse import url_from_connection

        url = url_from_connection()
        run_end = run_end_from_context(context)
        dbt_outcomes = run_dbt_tests(url)
        result = run_gate(url, build_schema="marts_build", run_id=context["run_id"], run_end=run_end,
                          docs_dir=docs_dir() / "data_docs", extra_outcomes=dbt_outcomes)
        result.raise_if_failed()  # critical failures: fail without retry; the notifier reports them
        summary = result.summary()
        notify_gate_warnings(summary, context)  # warnings: publish, and tell people
        return summary

    @task(outlets=[MARTS_ASSET])
    def publish() -> dict:
        from crm_warehouse.quality.publish import publish as publish_marts
        from crm_warehouse.warehouse import connect

        with connect() as conn:
            return publish_marts(conn, build_schema="marts_build", target_schema="marts")

    @task
    def insight_report() -> dict:
        """The manager's report (charts from the published marts) at <docs>/report/index.html."""
        from crm_warehouse.report import write_insight_report

        return write_insight_report()

    docs = DbtDocsLocalOperator(
        task_id="dbt_docs",
        project_dir=str(DBT_DIR),
        profile_config=PROFILE,
        dbt_cmd_flags=["--static"],
        install_deps=False,
        invocation_mode=InvocationMode.DBT_RUNNER,
        callback=publish_dbt_docs,
    )

    chain(bootstrap_warehouse(), enrich(), dbt, quality_gate(), publish(), insight_report(), docs)


transform_warehouse()
