"""VADER sentiment (vaderSentiment) of customers' social texts: X mentions, Facebook and LinkedIn comments.

Two scores per text:
- `compound`: VADER on the whole text, as the library scores it;
- `sentence_min_compound`: VADER on each sentence, the most negative sentence's compound. VADER is built
  and validated on sentences (its authors score longer texts sentence by sentence): on a whole text its
  negation rule looks three words back across sentence ends, so in "...your store closed early without
  notice. Absolutely terrible." the "without" of one sentence turns the "terrible" of the next positive
  (+0.42). Scored per sentence, "Absolutely terrible." is -0.53. One clearly negative sentence makes a
  complaint, so the complaint models read this score.

A text is scored again when its content changed (an edited comment lands as a new version) or when it was
scored by an older SCORER_VERSION. VADER's authors classify compound <= -0.05 as negative; the complaint
models use that threshold (dbt var `social_negative_threshold`).
"""

from __future__ import annotations

import hashlib
import re

import psycopg

from crm_warehouse.enrich._raw import advance_marks, copy_in_chunks, existing_tables, read_since

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
    scored_at   timestamptz not null default now(),
    sentence_min_compound double precision,   -- the most negative sentence's VADER compound
    scorer_version integer              -- SCORER_VERSION the text was scored with
);
-- int_interactions_unioned reads the texts scored since its last run
create index if not exists social_sentiment_scored_at on {SENTIMENT_TABLE} (scored_at)
"""
# Tables made by the first version lack the last two columns. Added only when missing: an ALTER takes an
# exclusive lock even when it changes nothing.
UPGRADE = f"""
do $upgrade$
begin
    if not exists (select from information_schema.columns
                   where table_schema = 'intermediate' and table_name = 'social_sentiment'
                     and column_name = 'scorer_version') then
        alter table {SENTIMENT_TABLE} add column if not exists sentence_min_compound double precision;
        alter table {SENTIMENT_TABLE} add column if not exists scorer_version integer;
    end if;
end
$upgrade$
"""
# Bump when the scoring changes: texts scored by an older version are scored again.
SCORER_VERSION = 2

# Sentence ends: . ! ? (with any closing quotes or brackets) followed by space, or a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\s*\n+\s*")

TEXT_QUERIES: dict[str, tuple[str, str]] = {
    "raw.social_x__mentions": ("x", "payload->>'text'"),
    "raw.social_facebook__comments": ("facebook", "payload->>'message'"),
    "raw.social_linkedin__comments": ("linkedin", "payload->'message'->>'text'"),
}



def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # loads the lexicon (~0.2 s)

    return SentimentIntensityAnalyzer()


def sentences(text: str) -> list[str]:
    """The text's sentences (the whole text when it has no sentence end)."""
    parts = [p.strip() for p in _SENTENCE_END.split(text)]
    return [p for p in parts if p] or [text]


def scores(analyzer, text: str) -> dict[str, float]:
    """VADER's polarity scores of the whole text, plus `sentence_min`: the most negative sentence's compound."""
    whole = analyzer.polarity_scores(text)
    whole["sentence_min"] = min(analyzer.polarity_scores(s)["compound"] for s in sentences(text))
    return whole


def score_sentiment(conn: psycopg.Connection, *, full: bool = False) -> int:
    """Score every new or changed social text among the records with a raw row extracted since the last run
    (every record when `full`); returns how many texts were scored."""
    version = str(SCORER_VERSION)
    with conn.transaction():
        conn.execute(DDL)
        conn.execute(UPGRADE)
        tables = [t for t in TEXT_QUERIES if t in existing_tables(conn, list(TEXT_QUERIES))]
        if not tables:
            return 0
        since = read_since(conn, "sentiment", tables, version, full)
        params: dict[str, object] = {"version": SCORER_VERSION}
        selects = []
        for index, table in enumerate(tables):
            channel, expr = TEXT_QUERIES[table]
            # the latest version of each record; since the mark, only records with a newer row: a condition
            # on the distinct-on key reaches the table's primary key instead of sorting every record
            changed = "true"
            if since[table] is not None:
                changed = (f"record_key = any(array(select record_key from {table}"
                           f" where extracted_at > %(since_{index})s))")
                params[f"since_{index}"] = since[table]
            selects.append(
                f"""select * from (
                    select distinct on (record_key) '{channel}' as channel,
                           '{channel}:' || record_key as text_id, {expr} as body
                    from {table} where {changed}
                    order by record_key, extracted_at desc, batch_id desc) as latest""")
        conn.execute(
            f"create temp table _sentiment_new (like {SENTIMENT_TABLE} including defaults) on commit drop"
        )
        with conn.cursor(name="crm_sentiment_new") as texts, conn.cursor() as cur:
            texts.execute(
                f"""
                select t.channel, t.text_id, t.body from ({' union all '.join(selects)}) as t
                left join {SENTIMENT_TABLE} s on s.text_id = t.text_id
                where t.body is not null
                  and (s.text_id is null or s.text_md5 <> md5(t.body)
                       or s.scorer_version is distinct from %(version)s)
                """,
                params,
            )
            analyzer = None

            def scored(chunk: list[tuple]):
                nonlocal analyzer
                analyzer = analyzer or _analyzer()
                for channel, text_id, body in chunk:
                    s = scores(analyzer, body)
                    md5 = hashlib.md5(body.encode("utf-8")).hexdigest()
                    yield (text_id, channel, s["compound"], s["pos"], s["neu"], s["neg"], md5, s["sentence_min"],
                           SCORER_VERSION)

            count = copy_in_chunks(texts, cur, "copy _sentiment_new (text_id, channel, compound, positive, neutral,"
                                   " negative, text_md5, sentence_min_compound, scorer_version) from stdin", scored)
        advance_marks(conn, "sentiment", since, version)
        if not count:
            return 0
        conn.execute(
            f"""
            insert into {SENTIMENT_TABLE} (text_id, channel, compound, positive, neutral, negative, text_md5,
                                           sentence_min_compound, scorer_version)
            select text_id, channel, compound, positive, neutral, negative, text_md5,
                   sentence_min_compound, scorer_version
            from _sentiment_new
            on conflict (text_id) do update set
                compound = excluded.compound, positive = excluded.positive, neutral = excluded.neutral,
                negative = excluded.negative, text_md5 = excluded.text_md5,
                sentence_min_compound = excluded.sentence_min_compound,
                scorer_version = excluded.scorer_version, scored_at = now()
            """
        )
        # fresh statistics for the next run's join with this table (see normalize_phones)
        conn.execute(f"analyze {SENTIMENT_TABLE}")
    return count
