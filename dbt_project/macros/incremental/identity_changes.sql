{#-
    The identity chain (int_identifiers_guarded -> int_identity_edges_built -> int_records_clustered ->
    int_customer_ids_assigned) and dim_customers are incremental: a run recomputes only what the day's changes
    touch. A model
    cannot see what its inputs changed by looking at them (a deleted record, an identifier a record no longer
    carries and a cut that was lifted leave no trace), so each model tells its readers, through mailboxes:
    table intermediate.identity_changes holds (reader, what changed), written by a model's hooks in the
    model's transaction and taken (deleted) by the reader's pre-hook in the reader's transaction. A run that
    fails leaves its mailbox full, and any order or selection of runs is safe: a reader takes everything
    sent to it since it last ran.

      sender                     reader                      what
      int_identifiers_unioned    int_identifiers_guarded     the records rewritten, and the strong
                                                             identifiers they carried before
                                 int_identity_edges_built    the records rewritten (self edges)
      int_record_links_unioned   int_identifiers_guarded     the links' owners rewritten and the records
                                                             they linked to before
                                 int_identity_edges_built    the links' owners rewritten
      int_identifiers_guarded    int_identity_edges_built    the identifiers judged again
      int_identity_edges_built   int_records_clustered       both ends of every edge deleted or written
      int_records_clustered      int_customer_ids_assigned   the records clustered again
      int_interactions_unioned   dim_customers               the records rewritten and those they answered
      int_identifiers_unioned    dim_customers               the records rewritten
      int_dispositions_unioned   dim_customers               the wrap-ups rewritten, their calls and cases
      int_customer_ids_assigned  dim_customers               the records whose id changed, with the old id
      (and to the facts and the complaint candidates: macros/incremental/fact_changes.sql and
      complaint_changes.sql)
      dim_customers              dim_customers               a note of the latest data it judged against

    A sender built in full (first run, --full-refresh) sends "everything": its readers then recompute in full
    (int_customer_ids_assigned, never fully refreshed, needs this after a --full-refresh of the others).
    Plans: a reader's work is found through indexes with `= any(array(...))` on base tables (not on CTEs that
    PostgreSQL materialises, where it compares every row with every element), and nested loops are off
    (the estimates for those arrays are guesses).
-#}

{#- the mailboxes; created once (on-run-start), under a lock as parallel dbt invocations may start together -#}
{% macro create_identity_changes() %}
do $crm_identity_changes$
begin
    perform pg_advisory_xact_lock(hashtext('crm_warehouse.identity_changes'));
    create table if not exists intermediate.identity_changes (
        reader text not null,
        is_everything boolean not null default false,
        record_id text,
        identifier_type text,
        identifier_value text
    );
    -- each reader takes its own mail; a day at ten million interactions leaves millions of rows for the others
    create index if not exists identity_changes_reader on intermediate.identity_changes (reader);
end
$crm_identity_changes$;
{% endmacro %}

{#- send the rows of `select_sql` (record_id, identifier_type, identifier_value) to each of `readers` -#}
{% macro send_identity_changes(readers, select_sql) %}
    insert into intermediate.identity_changes (reader, record_id, identifier_type, identifier_value)
    select readers.reader, changes.*
    from (select distinct * from ({{ select_sql }}) as sent) as changes
    cross join unnest(array['{{ readers | join("', '") }}']) as readers (reader)
{% endmacro %}

{#- a sender built in full: its readers recompute everything -#}
{% macro send_identity_everything(readers) %}
    insert into intermediate.identity_changes (reader, is_everything)
    select unnest(array['{{ readers | join("', '") }}']), true
{% endmacro %}

{#- the pre-hook of a reader: takes its mail into the temporary table `changes` (record_id, identifier_type,
    identifier_value) -#}
{% macro receive_identity_changes(changes) %}
        create temporary table {{ changes }} on commit drop as
        with taken as (
            delete from intermediate.identity_changes
            where reader = '{{ this.identifier }}'
            returning record_id, identifier_type, identifier_value
        )
        select distinct * from taken;
        analyze {{ changes }}
{% endmacro %}

{#- true when this run of the model recomputes only what changed: its table exists and no sender was built
    in full since its last run (checked before the pre-hook takes the mail) -#}
{% macro identity_incremental() %}
    {#- a unit test of a model that does not say whether it is incremental has no `this`: it is not -#}
    {%- if this is none or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if execute -%}
        {%- set query -%}
            select exists (
                select from intermediate.identity_changes where reader = '{{ this.identifier }}' and is_everything
            )
        {%- endset -%}
        {{ return(not run_query(query).columns[0].values()[0]) }}
    {%- endif -%}
    {{ return(true) }}
{% endmacro %}

{#- The pre-hooks of the identity chain. Each takes its mail; on an incremental run it keeps what to
    recompute in a temporary table, sends its readers what it will change and deletes those rows; when a
    sender was built in full it deletes every row (the model recomputes everything); on a full build it only
    tells its readers so. -#}

{#- the identifiers to judge again (int_identifiers_guarded_changed): those the records sent carry now, or
    carried before (sent too), and those carried by a record linked to a record sent (it reaches that record:
    its profile, or the links, changed) -#}
{% macro int_identifiers_guarded_changes() %}
    {{ receive_identity_changes('int_identifiers_guarded_mail') }};
    {%- if identity_incremental() %}
        create temporary table int_identifiers_guarded_records on commit drop as
        select record_id from int_identifiers_guarded_mail
        where record_id is not null
        union
        select linked_record_id from {{ ref('int_record_links_unioned') }}
        where record_id = any(array(select record_id from int_identifiers_guarded_mail))
        union
        select record_id from {{ ref('int_record_links_unioned') }}
        where linked_record_id = any(array(select record_id from int_identifiers_guarded_mail));
        create temporary table int_identifiers_guarded_changed on commit drop as
        select identifier_type, identifier_value from int_identifiers_guarded_mail
        where identifier_type is not null
        union
        select identifier_type, identifier_value from {{ ref('int_identifiers_unioned') }}
        where is_strong and record_id = any(array(select record_id from int_identifiers_guarded_records));
        analyze int_identifiers_guarded_changed;
        {{ send_identity_changes(['int_identity_edges_built'],
            'select null::text, identifier_type, identifier_value from int_identifiers_guarded_changed') }};
        delete from {{ this }}
        where identifier_value = any(array(select identifier_value from int_identifiers_guarded_changed))
          and (identifier_type, identifier_value) in (
              select identifier_type, identifier_value from int_identifiers_guarded_changed
          )
    {%- else %}
        {{ send_identity_everything(['int_identity_edges_built']) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- the edges to write again: those of the identifiers judged again (an identifier's star, or none when it is
    cut), and the links and self edge of the records sent (int_identity_edges_built_identifiers and _records);
    both ends of each, before and after, go to int_records_clustered (the post-hook sends the new ones). Two
    conditions, each found by its index (in one statement with `or`, PostgreSQL would compare every edge with
    every identifier) -#}
{% macro int_identity_edges_built_stars(edges) -%}
    {{ edges }}.edge_type = 'identifier'
    and {{ edges }}.identifier_value = any(array(select identifier_value from int_identity_edges_built_identifiers))
    and ({{ edges }}.edge_detail, {{ edges }}.identifier_value) in (
        select identifier_type, identifier_value from int_identity_edges_built_identifiers
    )
{%- endmacro %}

{% macro int_identity_edges_built_own(edges) -%}
    {{ edges }}.edge_type in ('link', 'self')
    and {{ edges }}.node_a = any(array(select record_id from int_identity_edges_built_records))
{%- endmacro %}

{#- `edges_sql`: with queries (stars, own) of (node_a, node_b), which may be delete ... returning -#}
{% macro send_edge_ends(edges_sql) %}
    with
    {{ edges_sql }}
    insert into intermediate.identity_changes (reader, record_id)
    select distinct 'int_records_clustered', ends.record_id
    from (select * from stars union all select * from own) as edges
    cross join lateral (values (edges.node_a), (edges.node_b)) as ends (record_id)
{% endmacro %}

{% macro int_identity_edges_built_changes() %}
    {%- set incremental = identity_incremental() %}
    {{ receive_identity_changes('int_identity_edges_built_mail') }};
    -- empty unless incremental (the post-hook reads them: it cannot tell which run this is, the mail is taken)
    create temporary table int_identity_edges_built_records on commit drop as
    select distinct record_id from int_identity_edges_built_mail
    where record_id is not null and {{ incremental }};
    create temporary table int_identity_edges_built_identifiers on commit drop as
    select distinct identifier_type, identifier_value from int_identity_edges_built_mail
    where identifier_type is not null and {{ incremental }};
    analyze int_identity_edges_built_records;
    analyze int_identity_edges_built_identifiers;
    {%- if incremental %}
        {{ send_edge_ends(
            'stars as (delete from ' ~ this ~ ' as edges where ' ~ int_identity_edges_built_stars('edges')
            ~ ' returning edges.node_a, edges.node_b), '
            ~ 'own as (delete from ' ~ this ~ ' as edges where ' ~ int_identity_edges_built_own('edges')
            ~ ' returning edges.node_a, edges.node_b)') }}
    {%- else %}
        {{ send_identity_everything(['int_records_clustered']) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- the post-hook: the ends of the edges written go to int_records_clustered too -#}
{% macro int_identity_edges_built_written() %}
    {{ send_edge_ends(
        'stars as (select node_a, node_b from ' ~ this ~ ' as edges where ' ~ int_identity_edges_built_stars('edges')
        ~ '), own as (select node_a, node_b from ' ~ this ~ ' as edges where ' ~ int_identity_edges_built_own('edges')
        ~ ')') }}
{% endmacro %}

{#- the records to cluster again (int_records_clustered_touched): the ends of the edges deleted or written,
    and every record of their clusters as the table holds them. No edge leaves this set (an edge that did not
    change joins two records of one old cluster; a changed one has both ends sent), so its components are
    components of the whole graph -#}
{% macro int_records_clustered_changes() %}
    {{ receive_identity_changes('int_records_clustered_mail') }};
    {%- if identity_incremental() %}
        create temporary table int_records_clustered_touched on commit drop as
        select record_id from int_records_clustered_mail
        where record_id is not null
        union
        select record_id from {{ this }}
        where cluster_key = any(array(
            select cluster_key from {{ this }}
            where record_id = any(array(select record_id from int_records_clustered_mail))
        ));
        analyze int_records_clustered_touched;
        {{ send_identity_changes(['int_customer_ids_assigned'],
            'select record_id, null::text, null::text from int_records_clustered_touched') }};
        delete from {{ this }}
        where record_id = any(array(select record_id from int_records_clustered_touched))
    {%- else %}
        {{ send_identity_everything(['int_customer_ids_assigned']) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- int_customer_ids_assigned takes the records clustered again (int_customer_ids_assigned_mail): they are
    whole clusters, before and after, so the ids they held are decided among them alone -#}
{% macro int_customer_ids_assigned_changes() %}
    {{ receive_identity_changes('int_customer_ids_assigned_mail') }}
{% endmacro %}

{#- the post-hook of int_customer_ids_assigned: dim_customers, the facts and the complaint candidates are told
    the records whose customer id changed and the id each had (its customer lost them, or is gone); everything
    after a full build of the clusters -#}
{% macro int_customer_ids_assigned_written() %}
    {%- set everything -%}
        exists (select from int_customer_ids_assigned_mail where record_id is null and identifier_type is null)
    {%- endset %}
    {{ send_identity_changes(['dim_customers', 'fct_interactions', 'fct_survey_feedback',
                              'int_complaint_candidates_unioned'],
        "select record_id, 'customer_id', previous_customer_id from " ~ this
        ~ " where record_id = any(array(select record_id from int_customer_ids_assigned_mail))"
        ~ " and changed_at = cast('" ~ run_started_at.isoformat() ~ "' as timestamptz)"
        ~ " and not " ~ everything) }};
    {{ send_identity_everything(['dim_customers', 'fct_interactions', 'fct_survey_feedback',
                                 'int_complaint_candidates_unioned']) }}
    where {{ everything }}
{% endmacro %}

{#- the records a customer-level reader's mail reaches (temporary table `records`, from `mail`): the records sent
    (touchpoints and identifiers rewritten, records whose customer id changed, the calls and cases wrap-ups
    rewritten were about before), the calls and cases of the wrap-ups sent as they are now, and the records
    those records answer (a company reply counts for its parent's customer) -#}
{% macro create_records_reached(mail, records) %}
        create temporary table {{ records }} on commit drop as
        select record_id from {{ mail }}
        where record_id is not null
        union
        select records.record_id
        from {{ ref('int_dispositions_unioned') }} as dispositions
        cross join lateral (values (dispositions.call_record_id), (dispositions.case_record_id)) as records (record_id)
        where dispositions.disposition_id = any(array(
            select identifier_value from {{ mail }} where identifier_type = 'disposition_id'
        ))
          and records.record_id is not null;
        insert into {{ records }}
        select parent_record_id from {{ ref('int_interactions_unioned') }}
        where record_id = any(array(select record_id from {{ records }}))
          and parent_record_id is not null
{% endmacro %}

{#- dim_customers: the customers to recompute (dim_customers_touched). dim_customers is told the records
    rewritten (touchpoints, identifiers; the calls and cases of wrap-ups rewritten, the records a rewritten
    reply answered) and the records whose customer id changed with the id they had; the customers are those
    records' customers now (int_customer_ids_assigned keeps the records that left too), their former ones,
    and the customers of the records they answer (a reply counts for its parent's customer). A customer's
    segment and at-risk flag also depend on the newest and oldest touchpoint of the warehouse: the table
    leaves itself a note of those it judged against (post-hook), and when the newest moved, the customers
    whose first contact or a complaint lies where the windows (vars new_customer_days and
    recent_complaints_days) moved are recomputed too; when the oldest moved, every customer is. -#}
{% macro dim_customers_changes() %}
    {{ receive_identity_changes('dim_customers_mail') }};
    create temporary table dim_customers_as_of on commit drop as
    select min(occurred_at) as history_start_at, max(occurred_at) as as_of_at
    from {{ ref('fct_interactions') }};
    {%- if identity_incremental() %}
        {{ create_records_reached('dim_customers_mail', 'dim_customers_records') }};
        create temporary table dim_customers_touched on commit drop as
        with
        noted as (
            select
                max(identifier_value::timestamptz) filter (where identifier_type = 'history_start_at')
                    as history_start_at,
                max(identifier_value::timestamptz) filter (where identifier_type = 'as_of_at') as as_of_at
            from dim_customers_mail
        ),
        moved as (
            select
                least(noted.as_of_at, now_.as_of_at) as earliest_at,
                greatest(noted.as_of_at, now_.as_of_at) as latest_at,
                noted.history_start_at is distinct from now_.history_start_at as has_history_moved
            from noted
            cross join dim_customers_as_of as now_
        )
        select customer_id from {{ ref('int_customer_ids_assigned') }}
        where record_id = any(array(select record_id from dim_customers_records))
        union
        select identifier_value from dim_customers_mail
        where identifier_type = 'customer_id' and identifier_value is not null
        union
        select customers.customer_id
        from {{ this }} as customers
        cross join moved
        where moved.has_history_moved
           or customers.first_contact_at
              between moved.earliest_at - interval '{{ var("new_customer_days") }} days'
                  and moved.latest_at - interval '{{ var("new_customer_days") }} days'
        union
        select complaints.customer_id
        from {{ ref('fct_complaints') }} as complaints
        cross join moved
        where complaints.opened_at
              between moved.earliest_at - interval '{{ var("recent_complaints_days") }} days'
                  and moved.latest_at - interval '{{ var("recent_complaints_days") }} days';
        {{ delete_touched_rows('customer_id', 'dim_customers_touched', 'customer_id') }}
    {%- else %}
        {{ delete_all_rows_if_incremental() }}
    {%- endif %}
{% endmacro %}

{#- the post-hook: the note of the oldest and newest touchpoint judged against -#}
{% macro dim_customers_written() %}
    {{ send_identity_changes(['dim_customers'],
        "select null::text, 'history_start_at', history_start_at::text from dim_customers_as_of"
        ~ " union all select null, 'as_of_at', as_of_at::text from dim_customers_as_of") }}
{% endmacro %}
