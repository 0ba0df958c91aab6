"""Enrichment the dbt SQL cannot do: phone numbers to E.164 and sentiment of social texts.

The transform DAG calls `run_all(conn)` before `dbt build`. Each step is incremental (it reads the raw rows
extracted since its last run, through the BRIN index on `extracted_at`, and processes only values it has not
enriched yet; `full=True`, passed on a full refresh, reads every raw row) and idempotent (re-running changes
nothing). The results land in
`intermediate.phone_numbers_normalized` and `intermediate.social_sentiment`, declared as the dbt
source `enrich`.
"""

from __future__ import annotations

import time

import psycopg

from crm_warehouse.enrich.phones import PHONES_TABLE, normalize_phones
from crm_warehouse.enrich.sentiment import SENTIMENT_TABLE, score_sentiment

__all__ = ["PHONES_TABLE", "SENTIMENT_TABLE", "normalize_phones", "run_all", "score_sentiment"]


def run_all(conn: psycopg.Connection, *, default_region: str = "US", full: bool = False) -> dict:
    """Run every enrichment step on what landed since the last run (everything when `full`); returns small
    stats: {"phones": n, "sentiment": n, "seconds": s}."""
    started = time.monotonic()
    phones = normalize_phones(conn, default_region=default_region, full=full)
    sentiment = score_sentiment(conn, full=full)
    return {"phones": phones, "sentiment": sentiment, "seconds": round(time.monotonic() - started, 3)}
