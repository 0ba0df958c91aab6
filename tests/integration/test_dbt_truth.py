"""Identity resolution and complaint detection measured against the sandbox's ground truth.

A generated world (sandbox.world, CONTRACTS section 9) is loaded straight from its served-record tables
into the raw landings (the extractors are tested elsewhere), enriched and built with dbt; then:
- identity: pairwise precision (records put together that are the same person) and recall (records
  of one person put together, over the pairs the truth's link groups say served evidence connects);
- complaints: precision and recall of the complaint records, per channel; retention after rectified and
  unrectified complaints;
- lifecycle: opened, first response, resolution, rectified, repeat, reach and retained of the complaints
  both sides found.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid

import psycopg
import pytest
from crm_warehouse.bootstrap import bootstrap
from crm_warehouse.enrich import run_all
from psycopg import sql
from test_dbt_pipeline import RAW_DDL, RAW_TABLES, dbt_build  # tests/integration is on sys.path

world_module = pytest.importorskip("sandbox.world")

# served-record table -> (raw table, payload column, source_object expression)
SERVED = {
    "s_calls": ("phone_system__calls", "payload", "null"),
    "s_dispositions": ("phone_system__dispositions", "payload", "null"),
    "s_survey_responses": ("survey_vendor__responses", "payload", "survey_id"),
    "s_form_responses": ("web_forms__responses", "payload", "form_id"),
    "s_x_mentions": ("social_x__mentions", "payload", f"'{world_module.X_USER_ID}'"),
    "s_x_users": ("social_x__users", "payload", f"'{world_module.X_USER_ID}'"),
    "s_fb_posts": ("social_facebook__posts", "payload", "null"),
    "s_fb_comments": ("social_facebook__comments", "payload", "post_id"),
    "s_li_posts": ("social_linkedin__posts", "payload", "null"),
    "s_li_comments": ("social_linkedin__comments", "payload", "post_urn"),
    "s_cc_calls": ("sftp_call_center__calls", "row", "'call_center_cdr'"),
    "s_cc_dispositions": ("sftp_call_center__dispositions", "row", "'call_center_dispositions'"),
    "s_sftp_survey": ("sftp_survey_vendor__responses", "row", "'survey_vendor'"),
}
RECORD_PREFIX = {
    ("phone_system", "calls"): "twilio:", ("sftp_call_center", "calls"): "call_center:",
    ("survey_vendor", "responses"): "qualtrics:", ("sftp_survey_vendor", "responses"): "qualtrics:",
    ("web_forms", "responses"): "typeform:", ("social_x", "mentions"): "x:",
    ("social_facebook", "comments"): "facebook:", ("social_linkedin", "comments"): "linkedin:",
}


def load_served_into_raw(conn: psycopg.Connection, world: sqlite3.Connection) -> None:
    """Bootstrap the warehouse and COPY every record the world served into its raw table, as the loader
    lands it (one batch): the starting point of the tests that build the marts without the extractors."""
    bootstrap(conn)
    for table in RAW_TABLES:
        conn.execute(RAW_DDL.format(table=table))
    for served, (raw, column, source_object) in SERVED.items():
        with conn.cursor().copy(
            sql.SQL("copy raw.{} (record_key, content_hash, payload, source_object, batch_id,"
                    " extracted_at) from stdin").format(sql.Identifier(raw))) as copy:
            for key, payload, obj in world.execute(f"select key, {column}, {source_object} from {served}"):
                digest = hashlib.sha256(payload.encode()).hexdigest()
                copy.write_row((key, digest, payload, obj, 1, "2026-10-01T00:00:00Z"))


@pytest.fixture(scope="module")
def built(pg_server_url, tmp_path_factory):
    world_dir = tmp_path_factory.mktemp("world")
    world_module.generate(world_dir, seed=11, customers=1000, days=30)
    world = sqlite3.connect(world_dir / "world.db")
    name = f"crm_test_dbt_truth_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(url) as conn:
            load_served_into_raw(conn, world)
            conn.execute("create table public.truth_records (record_id text, person_id text, complaint_id text,"
                         " kind text, linkable boolean, shared_line boolean, link_group text)")
            with conn.cursor().copy("copy public.truth_records from stdin") as copy:
                for source, stream, key, person, complaint, kind, linkable, shared_line, group in world.execute(
                        "select source, stream, record_key, person_id, complaint_id, kind, linkable, shared_line,"
                        " link_group from truth_records"):
                    prefix = RECORD_PREFIX.get((source, stream))
                    if prefix:
                        copy.write_row((prefix + key, person, complaint, kind, bool(linkable), bool(shared_line),
                                        group))
            conn.execute("create table public.truth_complaints (record_id text, channel text, rectified boolean,"
                         " retained boolean, person_id text, opened_at timestamptz, first_response_at timestamptz,"
                         " resolved_at timestamptz, social_reach integer)")
            with conn.cursor().copy("copy public.truth_complaints from stdin") as copy:
                for source, stream, key, channel, rectified, retained, *rest in world.execute(
                        "select source, stream, record_key, channel, rectified, retained, person_id, opened_at,"
                        " first_response_at, resolved_at, social_reach from truth_complaints"):
                    copy.write_row((RECORD_PREFIX[(source, stream)] + key, channel, bool(rectified),
                                    None if retained is None else bool(retained), *rest))
            conn.commit()
            run_all(conn)
            dbt_build(url, tmp_path_factory.mktemp("dbt"))
            yield conn
    finally:
        if os.environ.get("CRM_TEST_KEEP_DB"):  # debugging: keep the database and say where it is
            print(f"kept {url}")
        else:
            with psycopg.connect(pg_server_url, autocommit=True) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_identity_precision_and_recall(built):
    """Pairwise, against the world's truth (sandbox.world._link_groups): precision over the pairs put
    together, leaving out records whose only identifier is a household's shared line (the same number
    for every member: nothing served tells them apart); recall over the pairs the truth's link groups
    say a rule could connect (a chain of identifiers or references the served records carry)."""
    predicted, true_positive, linkable_pairs, linkable_found, shared = built.execute("""
        with r as (
            select t.record_id, t.person_id, t.shared_line, t.link_group, m.customer_id
            from public.truth_records as t
            inner join intermediate.int_customer_ids_assigned as m on m.record_id = t.record_id
            where t.person_id is not null
        ),
        judged as (select * from r where not shared_line),
        by_customer as (select customer_id, count(*) as n from judged group by 1),
        by_both as (select customer_id, person_id, count(*) as n from judged group by 1, 2),
        by_group as (select link_group, count(*) as n from r group by 1),
        group_found as (select link_group, customer_id, count(*) as n from r group by 1, 2)
        select
            (select sum(n * (n - 1) / 2) from by_customer),
            (select sum(n * (n - 1) / 2) from by_both),
            (select sum(n * (n - 1) / 2) from by_group),
            (select sum(n * (n - 1) / 2) from group_found),
            (select count(*) from r where shared_line)
    """).fetchone()
    precision = true_positive / predicted
    recall = linkable_found / linkable_pairs
    print(f"identity: pairwise precision {precision:.4f}, recall {recall:.4f} (predicted pairs {predicted},"
          f" linkable pairs {linkable_pairs}, shared-line records left out of precision {shared})")
    assert linkable_pairs > 1000 and shared < 0.1 * built.execute(
        "select count(*) from intermediate.int_customer_ids_assigned").fetchone()[0]
    assert precision >= 0.99
    assert recall >= 0.97


# the world's complaint channels -> the marts' channel names
TRUTH_CHANNELS = {"phone": "phone", "phone_outsourced": "call_center", "web_form": "web_form", "survey": "survey",
                  "social_x": "x", "social_facebook": "facebook", "social_linkedin": "linkedin"}


def test_complaint_precision_and_recall_per_channel(built):
    """Every channel: precision (complaints found that are true complaints) and recall (true complaints found)
    of the complaint records, at least 0.95 each."""
    rows = built.execute("""
        with truth as (
            select t.record_id, m.channel
            from public.truth_complaints as t
            inner join (select * from unnest(%s::text[], %s::text[])) as m (truth_channel, channel)
                on m.truth_channel = t.channel
        )
        select coalesce(truth.channel, found.channel) as channel,
               count(found.complaint_id) as found, count(truth.record_id) as truth,
               count(*) filter (where found.complaint_id is not null and truth.record_id is not null) as matched
        from truth
        full join marts_build.fct_complaints as found on found.complaint_id = truth.record_id
        group by 1 order by 1
    """, (list(TRUTH_CHANNELS), list(TRUTH_CHANNELS.values()))).fetchall()
    unknown = built.execute("select distinct channel from public.truth_complaints where channel <> all(%s)",
                            (list(TRUTH_CHANNELS),)).fetchall()
    assert not unknown, f"the world has complaint channels the test does not map: {unknown}"
    table = {channel: (found, truth, matched) for channel, found, truth, matched in rows}
    print(f"\n{'channel':<12}{'found':>7}{'truth':>7}{'matched':>9}{'precision':>11}{'recall':>8}")
    for channel, (found, truth, matched) in table.items():
        print(f"{channel:<12}{found:>7}{truth:>7}{matched:>9}{matched / max(found, 1):>11.3f}"
              f"{matched / max(truth, 1):>8.3f}")
    assert sorted(table) == sorted(TRUTH_CHANNELS.values()), "a channel is missing from the truth or the mart"
    for channel, (found, truth, matched) in table.items():
        assert truth >= 5, f"{channel}: only {truth} true complaints, too few to measure"
        assert matched / found >= 0.95, f"{channel}: precision {matched / found:.3f} < 0.95"
        assert matched / truth >= 0.95, f"{channel}: recall {matched / truth:.3f} < 0.95"


def test_retention_of_rectified_complainants_matches_the_truth(built):
    """The mart's retention after a rectified complaint (share of rectified complaints whose customer stayed, as
    the insight report reads it) within 3 points of the world's (the truth's retained flag over rectified
    complaints whose outcome falls inside the world); unrectified reported alongside."""
    truth = dict(built.execute("""
        select rectified, avg(retained::int) from public.truth_complaints where retained is not null group by 1
    """).fetchall())
    mart = dict(built.execute("""
        select is_rectified, avg(is_retained_afterwards::int) from marts_build.fct_complaints group by 1
    """).fetchall())
    known = dict(built.execute("""
        select f.is_rectified, avg(f.is_retained_afterwards::int)
        from marts_build.fct_complaints as f
        inner join public.truth_complaints as t on t.record_id = f.complaint_id and t.retained is not null
        group by 1
    """).fetchall())
    for rectified in (True, False):
        label = "rectified" if rectified else "unrectified"
        print(f"retention after {label:<11} complaints: truth {100 * truth[rectified]:.1f}%, mart "
              f"{100 * mart[rectified]:.1f}% (mart over complaints whose outcome the world knows "
              f"{100 * known[rectified]:.1f}%)")
    assert abs(mart[True] - truth[True]) <= 0.03
    assert mart[True] > mart[False]  # the world's rectified complainants stay more often, and the mart says so


def test_complaint_lifecycle_agrees_with_truth(built):
    """Complaints both sides found: opened, first response, resolution, rectified, repeat (the same person
    complained within 30 days before), social reach and retained agree with the world."""
    (n, opened, response_n, response, resolved_n, resolved, rectified, repeat, reach_n, reach, retained_n,
     retained) = built.execute("""
        with truth as (
            select t.*, exists (
                select from public.truth_complaints as p
                where p.person_id = t.person_id and p.record_id <> t.record_id
                  and p.opened_at < t.opened_at and p.opened_at >= t.opened_at - interval '30 days'
            ) as is_repeat
            from public.truth_complaints as t
        )
        select
            count(*),
            -- calls open when answered (after up to 4 minutes in the queue); partial forms when the page was
            -- opened (up to 15 minutes before the world's moment of complaint)
            count(*) filter (where abs(extract(epoch from f.opened_at - t.opened_at)) <= 900),
            count(*) filter (where t.first_response_at is not null or f.first_response_at is not null),
            count(*) filter (where abs(extract(epoch from f.first_response_at - t.first_response_at)) <= 3600),
            count(*) filter (where t.resolved_at is not null or f.resolved_at is not null),
            count(*) filter (where abs(extract(epoch from f.resolved_at - t.resolved_at)) <= 3600),
            count(*) filter (where f.is_rectified = t.rectified),
            count(*) filter (where f.is_repeat = t.is_repeat),
            count(*) filter (where t.social_reach is not null),
            count(*) filter (where t.social_reach is not null and f.social_reach >= t.social_reach),
            count(*) filter (where t.retained is not null),
            count(*) filter (where t.retained is not null and f.is_retained_afterwards = t.retained)
        from truth as t
        inner join marts_build.fct_complaints as f on f.complaint_id = t.record_id
    """).fetchone()
    print(f"lifecycle of {n} complaints: opened {opened}, first response {response}/{response_n}, resolved "
          f"{resolved}/{resolved_n}, rectified {rectified}, repeat {repeat}, reach {reach}/{reach_n}, "
          f"retained {retained}/{retained_n} agree")
    assert n >= 100 and response_n and resolved_n and reach_n and retained_n
    assert opened / n >= 0.99
    assert response / response_n >= 0.95
    assert resolved / resolved_n >= 0.95
    assert rectified / n >= 0.95
    assert repeat / n >= 0.95
    assert reach / reach_n >= 0.95  # the mart adds reposts, replies and likes to the author's followers
    assert retained / retained_n >= 0.85
