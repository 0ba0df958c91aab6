"""Write, audit, publish on a real PostgreSQL: marts shaped like dbt's are built by hand in marts_build,
the gate validates them with Great Expectations, publish swaps them into `marts`, and a separate
`bi_reader` session sees only whole, validated marts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.quality.gate import QualityGateFailed, run_gate
from crm_warehouse.quality.publish import PublishError, audit_and_publish, publish

RUN_END = datetime(2026, 9, 11, tzinfo=UTC)
MARTS = ("dim_customers", "fct_interactions", "fct_complaints", "fct_survey_feedback",
         "fct_service_quality_daily")

# Ten days (2026-09-01 .. 09-10) of a small world shaped like dbt's marts (dbt_project/models/marts):
# 60 customers; phone 30 calls a day, web forms 4 a day, surveys 6 a day; every fifth call and every
# second form is a complaint (complaint_id = the id of the interaction that opened it).
BUILD_MARTS = """
drop table if exists marts_build.fct_service_quality_daily, marts_build.fct_survey_feedback,
    marts_build.fct_complaints, marts_build.fct_interactions, marts_build.dim_customers;

create table marts_build.fct_interactions as
select
    format('%s-%s-%s', channel, day::date, n) as interaction_id,
    format('cus_%s', (n * 7 + extract(day from day)::int) % 60) as customer_id,
    case channel when 'phone' then 'twilio' when 'web_form' then 'typeform' else 'qualtrics' end
        as source_system,
    channel,
    case channel when 'phone' then 'voice' when 'web_form' then 'web' else 'survey' end as channel_group,
    'inbound'::text as direction,
    case when channel = 'survey' then 'proactive' else 'reactive' end as stance,
    case channel when 'phone' then 'call' when 'web_form' then 'form' else 'survey_response' end
        as interaction_type,
    day + make_interval(mins => n * 17) as occurred_at,
    (day + make_interval(mins => n * 17))::date as occurred_date,
    case when channel = 'phone' then 60 + n * 5 end as duration_seconds,
    (channel = 'phone' and n % 5 = 0) or (channel = 'web_form' and n % 2 = 0) as is_complaint
from generate_series(timestamptz '2026-09-01', timestamptz '2026-09-10', interval '1 day') as day
cross join (values ('phone', 30), ('web_form', 4), ('survey', 6)) as channels (channel, per_day)
cross join lateral generate_series(1, per_day) as n;

create table marts_build.fct_complaints as
select
    interaction_id as complaint_id,
    customer_id,
    channel,
    channel_group,
    case when channel = 'phone' then 'call_disposition' else 'complaint_form' end as complaint_source,
    'service'::text as problem_category,
    'medium'::text as severity,
    occurred_at as opened_at,
    occurred_at + interval '2 hours' as first_response_at,
    case when right(interaction_id, 1) in ('0', '5') then occurred_at + interval '6 hours' end as resolved_at,
    case when right(interaction_id, 1) in ('0', '5') then 'rectified' else 'responded' end as complaint_status,
    right(interaction_id, 1) in ('0', '5') as is_resolved,
    right(interaction_id, 1) in ('0', '5') as is_rectified,
    false as is_repeat,
    0 as social_reach,
    true as is_retained_afterwards,
    2.0 as hours_to_first_response,
    case when right(interaction_id, 1) in ('0', '5') then 6.0 end as hours_to_resolution
from marts_build.fct_interactions
where is_complaint;

create table marts_build.fct_survey_feedback as
select
    'R_' || interaction_id as survey_response_id,
    customer_id,
    occurred_at + interval '5 minutes' as recorded_at,
    1 + (split_part(interaction_id, '-', 5)::int % 5) as csat_score,
    split_part(interaction_id, '-', 5)::int + 4 as nps_score,
    case when split_part(interaction_id, '-', 5)::int + 4 >= 9 then 'promoter'
         when split_part(interaction_id, '-', 5)::int + 4 >= 7 then 'passive' else 'detractor' end
        as nps_category,
    false as has_reported_problem,
    null::text as problem_category,
    null::text as required_to_satisfy,
    null::text as necessary_to_rectify,
    null::text as how_to_avoid,
    'survey'::text as attributed_channel
from marts_build.fct_interactions
where channel = 'survey';

create table marts_build.dim_customers as
select
    i.customer_id,
    min(i.occurred_at) as first_contact_at,
    max(i.occurred_at) as last_contact_at,
    count(*) as interactions_count,
    string_agg(distinct i.channel, ',') as channels,
    mode() within group (order by i.channel) as preferred_channel,
    (select round(avg(csat_score), 2) from marts_build.fct_survey_feedback f where f.customer_id = i.customer_id)
        as csat_avg,
    null::int as latest_csat_score,
    null::int as latest_nps_score,
    count(*) filter (where i.is_complaint) as complaints_count,
    0 as unresolved_complaints_count,
    case when count(*) filter (where i.is_complaint) > 0 then 'complainant' else 'regular' end as segment,
    false as is_at_risk
from marts_build.fct_interactions i
group by i.customer_id;

create table marts_build.fct_service_quality_daily as
select
    md5(i.channel || '|' || i.day::text) as service_quality_day_id,
    i.day as service_date,
    i.channel,
    i.interactions as interactions_count,
    coalesce(c.complaints, 0) as complaints_count,
    round(coalesce(c.complaints, 0)::numeric / i.interactions, 4) as complaint_rate,
    i.interactions as opportunities_count,
    round(1e6 * coalesce(c.complaints, 0)::numeric / i.interactions, 1) as dpmo,
    case when coalesce(c.complaints, 0) = 0 then 6.0 else 2.34 end as sigma_level,
    c.avg_first as avg_hours_to_first_response,
    c.avg_resolution as avg_hours_to_resolution,
    case when c.complaints > 0 then 1.0 end as rectified_retention_rate,
    case when c.complaints > 0 then 1.0 end as unrectified_retention_rate,
    s.csat_avg,
    s.nps
from (select channel, occurred_date as day, count(*) as interactions
      from marts_build.fct_interactions group by 1, 2) i
left join (select channel, opened_at::date as day, count(*) as complaints,
                  avg(hours_to_first_response) as avg_first, avg(hours_to_resolution) as avg_resolution
           from marts_build.fct_complaints group by 1, 2) c on c.channel = i.channel and c.day = i.day
left join (select attributed_channel as channel, recorded_at::date as day, round(avg(csat_score), 2) as csat_avg,
                  round(100.0 * (count(*) filter (where nps_category = 'promoter')
                                 - count(*) filter (where nps_category = 'detractor')) / count(*), 1) as nps
           from marts_build.fct_survey_feedback group by 1, 2) s on s.channel = i.channel and s.day = i.day;
"""

RAW = """
create table if not exists ops.batches (
    batch_id bigint primary key, source text, stream text, window_start timestamptz, window_end timestamptz,
    cursor_before jsonb, cursor_after jsonb, received int, loaded int, duplicate int, quarantined int,
    status text, started_at timestamptz, finished_at timestamptz, error text);
create table if not exists raw.phone_system__calls (
    record_key text not null, content_hash text not null, payload jsonb not null, source_object text,
    batch_id bigint not null, extracted_at timestamptz not null, source_uri text, source_position text,
    primary key (record_key, content_hash));
insert into ops.batches values
    (1, 'phone_system', 'calls', '2026-09-01', '2026-09-06', null, null, 12, 10, 2, 0, 'succeeded',
     '2026-09-06 01:00Z', '2026-09-06 01:01Z', null),
    (2, 'phone_system', 'calls', '2026-09-06', '2026-09-11', null, null, 5, 5, 0, 0, 'succeeded',
     '2026-09-10 01:00Z', '2026-09-10 01:01Z', null);
insert into raw.phone_system__calls
select 'CA' || md5(n::text), encode(sha256(n::text::bytea), 'hex'),
       jsonb_build_object('sid', 'CA' || md5(n::text), 'duration', (n * 7)::text, 'status', 'completed',
                          'direction', 'inbound', 'from', '+15550100' || lpad(n::text, 3, '0'), 'to', '+15550199000',
                          'start_time', 'Thu, 10 Sep 2026 00:0' || (n % 10) || ':00 +0000',
                          'end_time', 'Thu, 10 Sep 2026 00:3' || (n % 10) || ':00 +0000'),
       null, case when n <= 10 then 1 else 2 end, timestamptz '2026-09-10 01:00Z', 'https://x/Calls.json', '1'
from generate_series(1, 15) n;
"""


def _bi_reader(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A separate session as `bi_reader`: a login when the server lets it in (trust on loopback), else
    the test user's session with `set role bi_reader` (servers that require passwords)."""
    parts = urlsplit(url)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    try:
        conn = psycopg.connect(urlunsplit(parts._replace(netloc=f"bi_reader@{host}")), autocommit=autocommit)
    except psycopg.OperationalError:
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("set role bi_reader")
        conn.autocommit = autocommit
    assert conn.execute("select current_user").fetchone()[0] == "bi_reader"
    if not autocommit:
        conn.commit()
    return conn


def _snapshot(conn: psycopg.Connection, schema: str = "marts") -> dict[str, tuple]:
    """Row count and an order-independent checksum of every mart, as the reader sees them."""
    out = {}
    for table in MARTS:
        out[table] = conn.execute(
            f"select count(*), coalesce(sum(hashtext(t::text)::bigint), 0) from {schema}.{table} t"  # noqa: S608
        ).fetchone()
    return out


@pytest.fixture
def warehouse(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        bootstrap(conn)
        conn.execute(RAW)
        conn.execute(BUILD_MARTS)
    return fresh_db


@pytest.fixture
def reader(warehouse):
    with _bi_reader(warehouse, autocommit=True) as conn:
        yield conn


def test_gate_passes_publishes_and_blocks_bad_marts(warehouse, reader, tmp_path):
    # 1. a clean build passes and is published
    started = time.monotonic()
    result, published = audit_and_publish(warehouse, run_id="run-1", run_end=RUN_END, docs_dir=tmp_path / "d1")
    timings = [f"run-1 audit+publish {time.monotonic() - started:.1f}s (gate {result.duration_seconds:.1f}s, "
               f"{len(result.outcomes)} checks, first GX use in the process)"]
    assert result.passed, result.report()
    assert set(published["tables"]) == set(MARTS)
    assert published["tables"]["fct_interactions"] == 400
    assert result.docs_path.is_file() and result.docs_path.name == "index.html"
    # Data Docs hold a page of every suite's validation and of every suite, linked from the index
    validated = {o.suite for o in result.outcomes if o.expectation_type not in ("table_exists", "suite_exists")}
    validations = list((tmp_path / "d1" / "validations").rglob("*.html"))
    assert len(validations) == len(validated) and len(list((tmp_path / "d1" / "expectations").rglob("*.html"))) \
        == len(validated), (len(validations), sorted(validated))
    index = result.docs_path.read_text()
    assert all(p.relative_to(tmp_path / "d1").as_posix() in index for p in validations)
    before = _snapshot(reader)
    assert before["fct_interactions"][0] == 400
    assert before["fct_complaints"][0] == 80
    with psycopg.connect(warehouse, autocommit=True) as conn:
        stored = conn.execute(
            "select count(*), count(*) filter (where not success), count(distinct suite) "
            "from quality.validation_results where run_id = 'run-1'").fetchone()
        assert stored[0] == len(result.outcomes) and stored[0] > 60
        assert stored[1] == len(result.warnings)  # no critical failure was stored for run-1
        # 2. bad data: an out-of-range score, a duplicated key, a vanished column, a day with no calls
        conn.execute("update marts_build.fct_survey_feedback set csat_score = 7 "
                     "where survey_response_id = (select min(survey_response_id) from marts_build.fct_survey_feedback)")
        conn.execute("insert into marts_build.fct_interactions select * from marts_build.fct_interactions "
                     "where interaction_id = 'web_form-2026-09-03-1'")
        conn.execute("alter table marts_build.dim_customers drop column segment")
        conn.execute("delete from marts_build.fct_complaints where channel = 'phone' "
                     "and opened_at::date = '2026-09-05'")
        conn.execute("delete from marts_build.fct_interactions where channel = 'phone' "
                     "and occurred_at::date = '2026-09-05'")

    with pytest.raises(QualityGateFailed) as failed:
        audit_and_publish(warehouse, run_id="run-2", run_end=RUN_END, docs_dir=tmp_path / "d2")
    timings.append(f"run-2 failing gate {failed.value.result.duration_seconds:.1f}s")
    message = str(failed.value)
    gate = failed.value.result
    by_check = {(o.suite, o.check): o for o in gate.critical_failures}
    assert by_check[("marts.fct_survey_feedback", "csat_between_1_and_5")].unexpected_count == 1
    assert by_check[("marts.fct_interactions", "interaction_id_unique")].unexpected_count == 2
    assert by_check[("marts.dim_customers", "columns_present")].observed["mismatched_columns"] == {
        "missing": ["segment"]}
    no_calls = by_check[("marts.fct_interactions", "no_day_without_interactions")]
    assert no_calls.unexpected_count == 1
    assert "marts.fct_survey_feedback.csat_between_1_and_5 on marts_build.fct_survey_feedback: " \
           "1 unexpected row of 60" in message
    assert "marts.fct_interactions.no_day_without_interactions on marts_build.fct_interactions: 1 unexpected row" \
        in message
    assert "interaction_id_unique" in message and "columns_present" in message
    assert f"Data Docs: {(tmp_path / 'd2' / 'index.html').resolve().as_uri()}" in message
    assert (tmp_path / "d2" / "index.html").is_file()
    # nothing else failed critically: the checks are precise
    assert set(by_check) == {
        ("marts.fct_survey_feedback", "csat_between_1_and_5"),
        ("marts.fct_interactions", "interaction_id_unique"),
        ("marts.dim_customers", "columns_present"),
        ("marts.dim_customers", "segment_accepted"),  # its column vanished: it could not run
        ("marts.fct_interactions", "no_day_without_interactions"),
    }, message
    assert '"segment"' in by_check[("marts.dim_customers", "segment_accepted")].error
    # BI still reads the previous marts, untouched
    assert _snapshot(reader) == before
    assert "segment" in [c.name for c in reader.execute("select * from marts.dim_customers limit 0").description]
    with psycopg.connect(warehouse, autocommit=True) as conn:
        rows = conn.execute(
            "select suite, expectation, severity, unexpected_count, observed from quality.validation_results "
            "where run_id = 'run-2' and not success and severity = 'critical' order by 1, 2").fetchall()
        assert [(r[0], r[1]) for r in rows] == sorted(by_check)
        assert all("partial_unexpected_list" not in r[4] for r in rows)
        # the audit trail holds counts, never the rows' values: not the duplicated key the unique check found,
        # nor any caller's phone number from raw (personal data), in any column of any run's results
        stored = conn.execute("select coalesce(string_agg(row_to_json(v)::text, ' '), '') "
                              "from quality.validation_results v").fetchone()[0]
        phones = [r[0] for r in conn.execute("select distinct payload->>'from' from raw.phone_system__calls")]
        assert len(phones) == 15 and len(stored) > 10_000
        leaked = [v for v in ["web_form-2026-09-03-1", "+15550199000", *phones] if v in stored]
        assert not leaked, f"validation results hold row values: {leaked}"

    # 3. fix (dbt rebuilds), one more day of data: the gate passes and BI sees the new marts
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute(BUILD_MARTS)
    result, _ = audit_and_publish(warehouse, run_id="run-3", run_end=RUN_END, docs_dir=tmp_path / "d3")
    assert result.passed, result.report()
    after = _snapshot(reader)
    assert after == before  # the rebuilt marts equal the first good build
    timings.append(f"run-3 gate {result.duration_seconds:.1f}s")
    print("\ngate timings on the test data: " + "; ".join(timings))


def test_ledger_mismatch_future_events_and_shrinking_marts_fail_the_gate(warehouse, tmp_path):
    with psycopg.connect(warehouse) as conn:
        publish(conn)  # what BI reads now: 400 interactions
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("delete from marts_build.fct_interactions where occurred_at < '2026-09-04'")  # 120 rows gone
        conn.execute("update ops.batches set loaded = 4, received = 6 where batch_id = 2")
        conn.execute("update marts_build.fct_complaints set opened_at = '2026-09-12', first_response_at = null "
                     "where complaint_id = (select min(complaint_id) from marts_build.fct_complaints)")
        conn.execute("create table marts_build.fct_orders (order_id text)")
    result = run_gate(warehouse, run_id="ledger", run_end=RUN_END, docs_dir=tmp_path)
    failed = {(o.suite, o.check): o for o in result.critical_failures}
    assert failed[("raw.phone_system__calls", "rows_reconcile_with_ledger")].unexpected_count == 1
    assert failed[("marts.fct_complaints", "opened_before_run_end")].unexpected_count == 1
    shrunk = failed[("marts.fct_interactions", "not_shrunk_vs_published")]
    assert shrunk.unexpected_count == 1  # 280 built rows against 400 published
    # an operator who deleted data on purpose waives that one check for a run: it becomes a warning
    waived = run_gate(warehouse, run_id="ledger-waived", run_end=RUN_END, docs_dir=tmp_path / "w",
                      waive=["marts.fct_interactions.not_shrunk_vs_published"])
    assert ("marts.fct_interactions", "not_shrunk_vs_published") not in {
        (o.suite, o.check) for o in waived.critical_failures}
    assert any(o.check == "not_shrunk_vs_published" and "(critical, waived)" in o.describe()
               for o in waived.warnings)
    # raw tables that never landed are warnings, not blockers
    missing = {o.suite for o in result.warnings if o.check == "table_exists"}
    assert "raw.web_forms__responses" in missing and "raw.phone_system__calls" not in missing
    # a mart without a suite would be published unchecked: a warning says which file to add
    unchecked = [o for o in result.warnings if o.check == "suite_exists"]
    assert [o.table for o in unchecked] == ["marts_build.fct_orders"]
    assert "expectations/marts/fct_orders.yml" in unchecked[0].error


def test_publish_is_atomic_for_a_concurrent_reader(warehouse, reader):
    with psycopg.connect(warehouse) as conn:
        assert set(publish(conn)["methods"].values()) == {"swap table"}  # first publish creates the marts
    old = _snapshot(reader)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("delete from marts_build.fct_interactions where channel = 'survey'")
        conn.execute("alter table marts_build.dim_customers add column region text")  # forces a table swap
    # a BI session in a repeatable-read transaction took its snapshot before the publish
    snapshot_reader = _bi_reader(warehouse)
    snapshot_reader.execute("set transaction isolation level repeatable read")
    assert snapshot_reader.execute("select count(*) from marts.fct_interactions").fetchone()[0] == 400
    publisher = psycopg.connect(warehouse)
    try:
        with publisher.transaction():
            methods = publish(publisher)["methods"]  # a savepoint inside this open transaction
            assert methods["dim_customers"] == "swap table" and methods["fct_interactions"] == "replace rows"
            # same-shape marts are replaced row-wise: the reader is not blocked and sees the old rows
            reader.execute("set statement_timeout = '5s'")
            assert reader.execute("select count(*) from marts.fct_interactions").fetchone()[0] == 400
            # a swapped mart is locked until commit: the reader waits, then sees the complete new table
            seen: list = []
            t = threading.Thread(target=lambda: seen.append(reader.execute(
                "select count(*), count(region) from marts.dim_customers").fetchone()))
            t.start()
            time.sleep(0.5)
            assert not seen  # still waiting: never an empty or half-built table
        t.join(5)
        assert seen == [(old["dim_customers"][0], 0)]
        assert reader.execute("select count(*) from marts.fct_interactions").fetchone()[0] == 340
        # the older snapshot still sees every old row (delete + insert is MVCC-safe), then the new ones
        assert snapshot_reader.execute("select count(*) from marts.fct_interactions").fetchone()[0] == 400
        snapshot_reader.commit()
        assert snapshot_reader.execute("select count(*) from marts.fct_interactions").fetchone()[0] == 340
    finally:
        publisher.close()
        snapshot_reader.close()
    # bi_reader kept select rights on the swapped table
    assert reader.execute("select count(*) from marts.dim_customers").fetchone()[0] == old["dim_customers"][0]


def test_publish_copies_only_what_changed_since_the_last_publish(warehouse, reader):
    """A mart with a unique key gets the rows the build wrote since the last publish, rows the build deleted are
    deleted, and what BI reads equals the build; the other marts are copied whole."""
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create unique index on marts_build.fct_interactions (interaction_id)")
        first = publish(conn)
        assert first["methods"]["fct_interactions"] == "swap table"
        assert conn.execute("select count(*) from pg_indexes where schemaname = 'marts'"
                            " and tablename = 'fct_interactions' and indexdef like 'CREATE UNIQUE%'").fetchone() == (1,)
        # a day's build, as dbt writes it: rows rewritten, rows added, rows deleted
        conn.execute("update marts_build.fct_interactions set duration_seconds = duration_seconds + 1"
                     " where channel = 'phone' and occurred_date = '2026-09-10'")  # 30 rows
        conn.execute("insert into marts_build.fct_interactions select interaction_id || '-late', customer_id,"
                     " source_system, channel, channel_group, direction, stance, interaction_type, occurred_at,"
                     " occurred_date, duration_seconds, is_complaint from marts_build.fct_interactions"
                     " where channel = 'web_form' and occurred_date = '2026-09-10'")  # 4 rows
        conn.execute("delete from marts_build.fct_interactions where channel = 'survey'"
                     " and occurred_date = '2026-09-01'")  # 6 rows
        second = publish(conn)
    assert second["methods"]["fct_interactions"] == "replace changed rows"
    assert second["changed"] == {"fct_interactions": 34}
    assert second["tables"]["fct_interactions"] == 400 + 4 - 6
    assert second["methods"]["fct_complaints"] == "replace rows"  # no unique key: copied whole
    with psycopg.connect(warehouse) as conn:
        assert _snapshot(reader) == _snapshot(conn, "marts_build")
    with psycopg.connect(warehouse, autocommit=True) as conn:
        assert publish(conn)["changed"] == {"fct_interactions": 0}  # nothing changed since
        # a publish that is rolled back leaves no mark: the next one still copies what it would have
        conn.execute("update marts_build.fct_interactions set duration_seconds = 0 where interaction_id like '%-late'")
        with conn.transaction():
            assert publish(conn)["changed"] == {"fct_interactions": 4}
            raise psycopg.Rollback()
    with psycopg.connect(warehouse, autocommit=True) as conn:
        assert publish(conn)["changed"] == {"fct_interactions": 4}
        # a build transaction still open while a publish runs is copied by the next publish
        writer = psycopg.connect(warehouse)
        try:
            writer.execute("update marts_build.fct_interactions set duration_seconds = 1"
                           " where interaction_id like 'phone-2026-09-09-%'")  # 30 rows, not committed yet
            conn.execute("select pg_current_xact_id()")  # a later transaction ends first: the writer is in flight
            assert publish(conn)["changed"] == {"fct_interactions": 0}
            writer.commit()
        finally:
            writer.close()
        assert publish(conn)["changed"] == {"fct_interactions": 30}
        assert _snapshot(conn) == _snapshot(conn, "marts_build")
        # full=True copies every row (after a --full-refresh, or to repair a published schema edited by hand)
        conn.execute("delete from marts.fct_interactions where channel = 'phone'")
        assert publish(conn, full=True)["methods"]["fct_interactions"] == "replace rows"
        assert _snapshot(conn) == _snapshot(conn, "marts_build")


def test_publish_gives_up_cleanly_when_a_swap_cannot_get_its_lock(warehouse, reader):
    with psycopg.connect(warehouse) as conn:
        publish(conn)
    before = _snapshot(reader)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("alter table marts_build.fct_complaints add column region text")
        conn.execute("delete from marts_build.fct_survey_feedback")
    long_query = _bi_reader(warehouse)  # a BI query holding its table open
    try:
        long_query.execute("select count(*) from marts.fct_complaints").fetchone()
        with psycopg.connect(warehouse) as conn, pytest.raises(PublishError, match="waited more than 1s"):
            publish(conn, lock_timeout="1s")
    finally:
        long_query.close()
    assert _snapshot(reader) == before  # nothing was published, not even the marts before the lock


def test_bi_reader_is_denied_outside_marts(warehouse, reader):
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("create view staging.stg_phone_system__calls as select * from raw.phone_system__calls")
    for relation in ("raw.phone_system__calls", "staging.stg_phone_system__calls", "marts_build.dim_customers",
                     "ops.batches"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute(f"select 1 from {relation} limit 1")  # noqa: S608
