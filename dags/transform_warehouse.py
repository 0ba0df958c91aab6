"""
### Transform, audit and publish the warehouse

Runs when any raw table changes (Assets published by the extract DAGs) and daily as a floor:

1. `enrich`: normalise new phone numbers (E.164, `phonenumbers`) and score new social texts (VADER), from the
   raw rows extracted since its last run (all of them on a full refresh);
2. `dbt_build`: seeds, snapshots, staging, identity resolution, complaints and marts, built into schema
   `marts_build` by one `dbt build` of models, seeds and snapshots only (dbt threads, through Cosmos); its log
   has one line per model (status, rows, seconds) and a failing model fails it, naming the model;
3. `quality_gate`: every dbt data test (one `dbt test`) and the Great Expectations suites from
   `expectations/` on raw and `marts_build`; a critical failure stops here, the task fails naming each
   failed check with its rows and the Data Docs, and BI keeps reading the previous `marts`. The checks of
   values read only what changed since the last gate that passed; every row is checked on the first gate,
   after a `{"full_refresh": true}` build and when the run's conf says `{"full_check": true}`;
4. `publish`: `marts_build` becomes `marts` in one transaction (what `bi_reader` sees);
5. `insight_report` and `dbt_docs`: the manager's report, dbt docs (Data Docs come from the gate), as
   static sites (`crm docs` serves them).
"""

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, chain, dag, task
from cosmos import ProfileConfig
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtBuildLocalOperator, DbtDocsLocalOperator
from cosmos.profiles import PostgresUserPasswordProfileMapping
from crm_warehouse.orchestration.dag_support import DEFAULT_ARGS, MARTS_ASSET, START_DATE, raw_asset, scheduled
from crm_warehouse.orchestration.dbt_build import log_dbt_build_results
from crm_warehouse.orchestration.docs import publish_dbt_docs
from crm_warehouse.orchestration.extract import bootstrap_warehouse
from crm_warehouse.settings import dbt_project_dir

DBT_DIR = dbt_project_dir()
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
    def enrich(**context) -> dict:
        from crm_warehouse.enrich import run_all
        from crm_warehouse.warehouse import connect

        # what landed since the last run; a full refresh reads every raw row again
        full = bool((context["dag_run"].conf or {}).get("full_refresh", False))
        with connect() as conn:
            return run_all(conn, full=full)

    # One `dbt build` of the whole project instead of one Airflow task per model: every model task paid
    # Airflow's and dbt's start-up (2-4 s, 60-100 s under load) for under a second of SQL. Cosmos's watcher
    # mode (one build plus a sensor per model) does not fit: inside a DbtTaskGroup, Cosmos 1.15 does not put the
    # build upstream of the first models' sensors (only DbtDag gets that), so under `airflow dags test`
    # (`crm demo`, the e2e tests), which runs one task at a time in no set order, a sensor can defer before the
    # build has started and its in-line trigger waits for ever; on Celery each sensor still costs a task start-up.
    # Tests are left out (`--resource-type`): dbt's data tests run in the quality gate, so a failing test gives
    # the gate's verdict (every failed check, its rows, the Data Docs) instead of failing the build; dbt's unit
    # tests run with the test suite.
    dbt = DbtBuildLocalOperator(
        task_id="dbt_build",
        project_dir=str(DBT_DIR),
        profile_config=PROFILE,
        dbt_cmd_flags=["--resource-type", "model", "--resource-type", "seed", "--resource-type", "snapshot"],
        install_deps=False,
        invocation_mode=InvocationMode.DBT_RUNNER,
        # `{"full_refresh": true}` in the run's conf rebuilds incremental models from scratch (after an upgrade
        # that changes their logic); every other run is incremental
        full_refresh="{{ (dag_run.conf or {}).get('full_refresh', False) }}",
        should_store_compiled_sql=False,  # the SQL of every model would be one unreadable rendered field
        callback=log_dbt_build_results,
    )

    @task
    def quality_gate(**context) -> dict:
        from crm_warehouse.orchestration.dag_support import run_end_from_context
        from crm_warehouse.quality.dbt_tests import run_dbt_tests
        from crm_warehouse.quality.gate import run_gate
        from crm_warehouse.quality.notify import notify_gate_warnings
        from crm_warehouse.quality.scope import decide_scope, full_check_reason
        from crm_warehouse.settings import docs_dir
        from crm_warehouse.warehouse import connect, url_from_connection

        url = url_from_connection()
        run_end = run_end_from_context(context)
        full = full_check_reason(context["dag_run"].conf)  # else: what changed since the last passed gate
        with connect() as conn:
            scope = decide_scope(conn, full_check=full is not None, full_reason=full or "")
        dbt_outcomes = run_dbt_tests(url, scope=scope)
        result = run_gate(url, build_schema="marts_build", run_id=context["run_id"], run_end=run_end,
                          docs_dir=docs_dir() / "data_docs", extra_outcomes=dbt_outcomes, scope=scope)
        result.raise_if_failed()  # critical failures: fail without retry; the notifier reports them
        summary = result.summary()
        notify_gate_warnings(summary, context)  # warnings: publish, and tell people
        return summary

    @task(outlets=[MARTS_ASSET])
    def publish(**context) -> dict:
        from crm_warehouse.quality.publish import publish as publish_marts
        from crm_warehouse.quality.scope import full_check_reason
        from crm_warehouse.warehouse import connect

        # the rows changed since the last publish; every row after a --full-refresh or when a full check is asked
        full = full_check_reason(context["dag_run"].conf) is not None
        with connect() as conn:
            return publish_marts(conn, build_schema="marts_build", target_schema="marts", full=full)

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
