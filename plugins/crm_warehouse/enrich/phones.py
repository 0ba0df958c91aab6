"""Every distinct phone string in the raw tables, normalised once to E.164 with `phonenumbers`."""

from __future__ import annotations

import psycopg

from crm_warehouse.enrich._raw import advance_marks, copy_in_chunks, existing_tables, read_since
from crm_warehouse.identity.phones import normalize_phone

PHONES_TABLE = "intermediate.phone_numbers_normalized"

DDL = f"""
create table if not exists {PHONES_TABLE} (
    raw_phone       text primary key,    -- the phone text as the source wrote it, trimmed
    e164            text,                -- E.164 (+14158675309); null when not a phone number
    is_valid        boolean not null,    -- libphonenumber is_valid_number
    region          text,                -- ISO 3166 region of the number
    default_region  text not null,       -- region assumed for numbers without a country code
    normalized_at   timestamptz not null default now(),
    candidates      text[],              -- every reading of an ambiguous national number
    rules_version   integer              -- RULES_VERSION the text was normalised with
)
"""
# Tables made by the first version lack the last two columns. Added only when missing: an ALTER takes an
# exclusive lock even when it changes nothing.
UPGRADE = f"""
do $upgrade$
begin
    if not exists (select from information_schema.columns
                   where table_schema = 'intermediate' and table_name = 'phone_numbers_normalized'
                     and column_name = 'rules_version') then
        alter table {PHONES_TABLE} add column if not exists candidates text[];
        alter table {PHONES_TABLE} add column if not exists rules_version integer;
    end if;
end
$upgrade$
"""
# Bump when the normalisation rules change: strings normalised by older rules are normalised again.
RULES_VERSION = 3

# Where phone strings live in the raw landings (CONTRACTS sections 2 to 6). One select per table, over its
# rows `r`; `{since}` becomes the condition that keeps the rows extracted since the step's mark.
PHONE_QUERIES: dict[str, str] = {
    "raw.phone_system__calls": """
        select p from raw.phone_system__calls r
        cross join lateral (values (r.payload->>'from'), (r.payload->>'to')) as v(p)
        where {since}""",
    "raw.sftp_call_center__calls": """
        select p from raw.sftp_call_center__calls r
        cross join lateral (values (r.payload->>'caller_number'), (r.payload->>'dialed_number')) as v(p)
        where {since}""",
    "raw.web_forms__responses": """
        select coalesce(a->>'phone_number', a->>'text')
        from raw.web_forms__responses r
        cross join lateral jsonb_array_elements(
            case when jsonb_typeof(r.payload->'answers') = 'array' then r.payload->'answers' else '[]' end) a
        where (a->>'type' = 'phone_number' or a->'field'->>'ref' = 'phone') and {since}""",
    "raw.survey_vendor__responses": """
        select r.payload->'values'->>'QID8_TEXT' from raw.survey_vendor__responses r where {since}""",
    "raw.sftp_survey_vendor__responses": """
        select r.payload->>'QID8_TEXT' from raw.sftp_survey_vendor__responses r where {since}""",
}
# the condition on a table read since its mark (its parameter is the table's position in PHONE_QUERIES)
SINCE = "r.extracted_at > %(since_{index})s"


def normalize_phones(conn: psycopg.Connection, default_region: str = "US", *, full: bool = False) -> int:
    """Normalise every phone string not seen before (or seen under older rules, or another default
    region) in the raw rows extracted since the last run (all of them when `full`); returns how many strings
    were (re)normalised."""
    version = f"{RULES_VERSION}:{default_region}"
    with conn.transaction():
        conn.execute(DDL)
        conn.execute(UPGRADE)
        tables = [t for t in PHONE_QUERIES if t in existing_tables(conn, list(PHONE_QUERIES))]
        if not tables:
            return 0
        since = read_since(conn, "phones", tables, version, full)
        params = {"version": RULES_VERSION, "region": default_region}
        selects = []
        for index, table in enumerate(tables):
            condition = "true"
            if since[table] is not None:
                condition = SINCE.format(index=index)
                params[f"since_{index}"] = since[table]
            selects.append(PHONE_QUERIES[table].format(since=condition))
        union = "\nunion all\n".join(selects)
        conn.execute(f"create temp table _phones_new (like {PHONES_TABLE} including defaults) on commit drop")
        with conn.cursor(name="crm_phones_new") as new, conn.cursor() as cur:
            new.execute(
                f"""
                select distinct btrim(p) from ({union}) as s(p)
                where nullif(btrim(p), '') is not null
                  and not exists (
                    select from {PHONES_TABLE} n
                    where n.raw_phone = btrim(s.p) and n.rules_version = %(version)s
                      and n.default_region = %(region)s)
                """,
                params,
            )

            def normalised(chunk: list[tuple]):
                for (raw,) in chunk:
                    n = normalize_phone(raw, default_region)
                    yield (raw, n.e164, n.is_valid, n.region, default_region, list(n.candidates) or None,
                           RULES_VERSION)

            count = copy_in_chunks(new, cur, "copy _phones_new (raw_phone, e164, is_valid, region, default_region,"
                                   " candidates, rules_version) from stdin", normalised)
        advance_marks(conn, "phones", since, version)
        if not count:
            return 0
        conn.execute(
            f"""
            insert into {PHONES_TABLE} (raw_phone, e164, is_valid, region, default_region, candidates, rules_version)
            select raw_phone, e164, is_valid, region, default_region, candidates, rules_version from _phones_new
            on conflict (raw_phone) do update set
                e164 = excluded.e164, is_valid = excluded.is_valid, region = excluded.region,
                default_region = excluded.default_region, candidates = excluded.candidates,
                rules_version = excluded.rules_version, normalized_at = now()
            """
        )
        # fresh statistics: without them the next run's `not exists` probe took the table for empty and
        # compared every new value with every stored one (a nested loop: 114 s for a day of 12,000 raw rows
        # against 72,000 numbers; 0.4 s with them)
        conn.execute(f"analyze {PHONES_TABLE}")
    return count
