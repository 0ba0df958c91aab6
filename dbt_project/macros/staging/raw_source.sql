{#-
    `source(source_name, table_name)`, or an empty relation of the raw landing shape (CONTRACTS
    section 2) when the loader has not created that table yet (a stream that never ran). Keeps the
    lineage of `source()` while letting a fresh warehouse build before every source has delivered.
-#}
{% macro raw_source(source_name, table_name) %}
    {%- set rel = source(source_name, table_name) -%}
    {%- if execute and rel.schema -%}
        {%- set existing = adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) -%}
    {%- else -%}
        {#- parsing, or a dbt unit test (the source is a fixture CTE) -#}
        {%- set existing = true -%}
    {%- endif -%}
    {%- if existing -%}
        {{ rel }}
    {%- else -%}
        (
            select
                null::text as record_key,
                null::text as content_hash,
                null::jsonb as payload,
                null::text as source_object,
                null::bigint as batch_id,
                null::timestamptz as extracted_at,
                null::text as source_uri,
                null::text as source_position
            where false
        ) as missing_raw_table
    {%- endif -%}
{% endmacro %}

{#- Latest version of every natural key of a raw landing (a changed record lands as a new version). -#}
{% macro latest_version(relation, key='record_key') %}
    select distinct on ({{ key }}) *
    from {{ relation }}
    order by {{ key }}, extracted_at desc, batch_id desc, content_hash
{% endmacro %}
