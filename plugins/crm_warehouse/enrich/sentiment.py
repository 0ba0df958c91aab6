"""VADER sentiment (vaderSentiment) of customers' social texts: X mentions, Facebook and LinkedIn comments.

A text is scored again only when its content changed (an edited comment lands as a new version).
VADER's authors classify compound <= -0.05 as negative; the complaint models use that threshold
(dbt var `social_negative_threshold`).
"""

from __future__ import annotations

import hashlib

import psycopg

from crm_warehouse.enrich._raw import existing_tables

SENTIMENT_TABLE = "intermediate.social_sentiment"

DDL = f"""
create table if not exists {SENTIMENT_TABLE} (
    text_id     text primary key,   -- record id: 'x:<tweet id>', 'facebook:<comment id>', 'linkedin:<urn>'
    channel     text not null,      -- x | facebook | linkedin
    compound    double precision not null,   -- VADER compound score in [-1, 1]
    positive    double precision not null,
    neutral     double precision not null,
    negative    double precision not null,
    text_md5    text not null,      -- md5 of the scored text, to re-score edited texts
    scored_at   timestamptz not null default now()
)
"""

TEXT_QUERIES: dict[str, tuple[str, str]] = {
    "raw.social_x__mentions": ("x", "payload->>'text'"),
    "raw.social_facebook__comments": ("facebook", "payload->>'message'"),
    "raw.social_linkedin__comments": ("linkedin", "payload->'message'->>'text'"),
}


def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # loads the lexicon (~0.2 s)

    return SentimentIntensityAnalyzer()


def score_sentiment(conn: psycopg.Connection) -> int:
    """Score every new or changed social text; returns how many texts were scored."""
    with conn.transaction():
        conn.execute(DDL)
        tables = existing_tables(conn, list(TEXT_QUERIES))
        if not tables:
            return 0
        selects = [
            f"""select * from (
                    select distinct on (record_key) '{channel}' as channel,
                           '{channel}:' || record_key as text_id, {expr} as body
                    from {table} order by record_key, extracted_at desc, batch_id desc) as latest"""
            for table, (channel, expr) in TEXT_QUERIES.items()
            if table in tables
        ]
        rows = conn.execute(
            f"""
            select t.channel, t.text_id, t.body from ({' union all '.join(selects)}) as t
            left join {SENTIMENT_TABLE} s on s.text_id = t.text_id
            where t.body is not null and (s.text_id is null or s.text_md5 <> md5(t.body))
            """
        ).fetchall()
        if not rows:
            return 0
        analyzer = _analyzer()
        conn.execute(
            f"create temp table _sentiment_new (like {SENTIMENT_TABLE} including defaults) on commit drop"
        )
        with conn.cursor() as cur:
            with cur.copy(
                "copy _sentiment_new (text_id, channel, compound, positive, neutral, negative, text_md5)"
                " from stdin"
            ) as copy:
                for channel, text_id, body in rows:
                    s = analyzer.polarity_scores(body)
                    md5 = hashlib.md5(body.encode("utf-8")).hexdigest()
                    copy.write_row((text_id, channel, s["compound"], s["pos"], s["neu"], s["neg"], md5))
        conn.execute(
            f"""
            insert into {SENTIMENT_TABLE} (text_id, channel, compound, positive, neutral, negative, text_md5)
            select text_id, channel, compound, positive, neutral, negative, text_md5 from _sentiment_new
            on conflict (text_id) do update set
                compound = excluded.compound, positive = excluded.positive, neutral = excluded.neutral,
                negative = excluded.negative, text_md5 = excluded.text_md5, scored_at = now()
            """
        )
    return len(rows)
