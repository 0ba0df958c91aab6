{#-
    Incremental intermediate models rewrite only the records whose raw rows arrived since their last run.

    The high-water mark is kept in the model's own table: the latest `extracted_at` of its rows (the
    extraction time of each record's latest version), less var incremental_lookback_hours, so that a load
    that committed after the last run but started before it (its rows carry their extraction time) is
    still read. A run then
      1. (pre-hook, macro incremental_changes) finds the natural keys with a raw row newer than the mark
         in stg_landing__arrivals (the raw tables' key, batch and extraction time, no payloads), keeps them
         in a temporary table, and deletes the model's rows of those records: a record that no longer
         qualifies (a call that became a child leg, a response without an id) disappears as it would from a
         full build;
      2. (the model) reads the staging views restricted to those keys: `record_key = any(array(...))` is a
         condition on the distinct-on key of macro latest_version, so PostgreSQL pushes it through the view
         into the raw table's primary key index instead of picking the latest version of every record;
      3. dbt's delete+insert writes the records' rows again.
    A full refresh (and the first run) builds from everything, as before.
-#}

{#- '<timestamptz>'::timestamptz: the model's high-water mark (its latest extracted_at, less the look-back) -#}
{% macro incremental_since(column='extracted_at') %}
    {%- if execute and is_incremental() -%}
        {%- set query -%}
            select coalesce(max({{ column }}) - interval '{{ var("incremental_lookback_hours") }} hours',
                '-infinity'::timestamptz)::text
            from {{ this }}
        {%- endset -%}
        {%- set since = run_query(query).columns[0].values()[0] -%}
        {{ return("'" ~ since ~ "'::timestamptz") }}
    {%- else -%}
        {{ return("'-infinity'::timestamptz") }}
    {%- endif -%}
{% endmacro %}

{#- the post-hook of those models: the index that finds the mark (max(extracted_at)) without reading the table,
    which every incremental run does once or more (at ten million interactions, seconds each time) -#}
{% macro extracted_at_index() -%}
    create index if not exists {{ this.identifier }}_extracted_at on {{ this }} (extracted_at)
{%- endmacro %}

{#- (raw_table, record_key) of every record of `raw_tables` with a raw row extracted after `since` -#}
{% macro arrived_keys(raw_tables, since) %}
    select raw_table, record_key
    from {{ ref('stg_landing__arrivals') }}
    where raw_table in ('{{ raw_tables | join("', '") }}')
      and extracted_at > {{ since }}
    group by raw_table, record_key
{% endmacro %}

{#- A condition on a staging view: its natural key is one of the changed keys (of `raw_table`, when given) -#}
{% macro is_changed_key(changes, raw_table=none) -%}
    record_key = any(array(
        select record_key from {{ changes }}
        {%- if raw_table %} where raw_table = '{{ raw_table }}'{% endif -%}
    ))
{%- endmacro %}

{#-
    The pre-hook of an incremental model: on an incremental run, the temporary table `changes`
    (raw_table, record_key, <key_column>) of the records to rewrite, and their rows deleted from the
    model's table. `key_sql` is the model's key computed from raw_table and record_key (the same expression
    the staging views use: record ids are '<system>:' || the natural key); `extra_sql`, when given, selects
    more (raw_table, record_key, key) rows to rewrite (changes that do not come from the raw tables read); it
    may read `changes`, which then holds what arrived (the raw tables are scanned once). `before_delete`, when
    given, runs before the rows are deleted (it may read them: the identity models send what changed, macros
    identity_changes); `on_full_build`, when given, runs instead on a full build.
-#}
{% macro incremental_changes(changes, raw_tables, key_column, key_sql, extra_sql=none, before_delete=none,
                             on_full_build=none) %}
    {%- if is_incremental() -%}
        create temporary table {{ changes }} on commit drop as
        select arrived.raw_table, arrived.record_key, {{ key_sql }} as {{ key_column }}
        from ({{ arrived_keys(raw_tables, incremental_since()) }}) as arrived;
        {%- if extra_sql %}
        insert into {{ changes }}
        {{ extra_sql }};
        {%- endif %}
        analyze {{ changes }};
        {%- if before_delete %}
        {{ before_delete }};
        {%- endif %}
        delete from {{ this }}
        where {{ key_column }} in (select {{ key_column }} from {{ changes }})
    {%- else -%}
        {{ on_full_build or 'select 1' }}
    {%- endif -%}
{% endmacro %}
