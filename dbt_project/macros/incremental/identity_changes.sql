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
      int_identifiers_unioned    int_identifiers_guarded     the records that dropped an identifier or
                                                             name and the strong identifiers they carried
                                                             before; each identifier or name a record took
                                 int_identity_edges_built    each strong identifier a record took (a new
                                                             point of its star) and each it dropped (star
                                                             drawn again)
      int_interactions_unioned   int_identity_edges_built    the records that became or stopped being
                                                             customer records (their self edge)
      int_record_links_unioned   int_identifiers_guarded     both ends of each link gone; each new link
                                 int_identity_edges_built    the owners whose links changed
      int_identifiers_guarded    int_identity_edges_built    the identifiers judged again whose cut
                                                             changed, new or gone (star drawn again)
      int_identity_edges_built   int_records_clustered       both ends of every edge written, and (marked
                                                             'split') of every edge deleted that nothing
                                                             replaces
      int_records_clustered      int_customer_ids_assigned   the records reached (their clusters are read)
      int_interactions_unioned   dim_customers               the records rewritten and those they answered
      int_identifiers_unioned    dim_customers               the records rewritten
      int_dispositions_unioned   dim_customers               the wrap-ups rewritten, their calls and cases
                                 int_record_links_unioned    the calls the wrap-ups rewritten were about
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

{#- The pre-hook of int_identifiers_guarded. Its mail (from int_identifiers_unioned and int_record_links_unioned):
      (record_id, null, null)           a record that dropped something: an identifier or a name, a reading of its
                                        phone that is exact now or no longer, a link (either end)
      (null, type, value)               a strong identifier such a record carried before
      (record_id, type, value)          a record took an identifier (strong, or a name) it did not carry
      (record_id, 'link', linked id)    a new link
    What a record that dropped something reached may have lost a value: the identifiers those records carry now or
    carried before, and those carried by the records linked to them, are judged again from their records
    (int_identifiers_guarded_changed, read by the model). Every other identifier the mail reaches only gained: a
    new record of its own (the record and its neighbours are reached), a new link of one of its records (the other
    end is reached), or a reached record took a name, email, phone or customer_ref. What it gained
    (int_identifiers_guarded_gained: identifier, reached record, whether the identifier is the record's own) is
    profiled and merged into the values the table keeps (int_identifiers_guarded_merged, read by the model): the
    day's records and their neighbours are read, not every record of the identifier. Both are deleted from the
    table (their judgements before are kept for the post-hook, int_identifiers_guarded_before). -#}
{% macro int_identifiers_guarded_changes() %}
    {{ identity_mail_lock() }};
    {{ receive_identity_changes('int_identifiers_guarded_mail') }};
    {%- if identity_incremental() %}
        create temporary table int_identifiers_guarded_dropping on commit drop as
        select distinct record_id from int_identifiers_guarded_mail
        where record_id is not null and identifier_type is null;
        create temporary table int_identifiers_guarded_records on commit drop as
        select record_id from int_identifiers_guarded_dropping
        union
        select linked_record_id from {{ ref('int_record_links_unioned') }}
        where record_id = any(array(select record_id from int_identifiers_guarded_dropping))
        union
        select record_id from {{ ref('int_record_links_unioned') }}
        where linked_record_id = any(array(select record_id from int_identifiers_guarded_dropping));
        create temporary table int_identifiers_guarded_changed on commit drop as
        select identifier_type, identifier_value from int_identifiers_guarded_mail
        where record_id is null and identifier_type is not null
        union
        select identifier_type, identifier_value from {{ ref('int_identifiers_unioned') }}
        where is_strong and record_id = any(array(select record_id from int_identifiers_guarded_records));
        analyze int_identifiers_guarded_changed;
        -- what was gained
        create temporary table int_identifiers_guarded_taken on commit drop as
        select distinct record_id, identifier_type, identifier_value from int_identifiers_guarded_mail
        where record_id is not null and identifier_type is not null and identifier_type <> 'link';
        create temporary table int_identifiers_guarded_new_links on commit drop as
        select distinct record_id, identifier_value as linked_record_id from int_identifiers_guarded_mail
        where identifier_type = 'link';
        -- the records that took a value of a record's profile
        create temporary table int_identifiers_guarded_valued on commit drop as
        select distinct record_id from int_identifiers_guarded_taken
        where identifier_type in ({{ guard_profile_types() }});
        analyze int_identifiers_guarded_taken;
        analyze int_identifiers_guarded_new_links;
        analyze int_identifiers_guarded_valued;
        create temporary table int_identifiers_guarded_neighbours on commit drop as
        select record_id, linked_record_id as neighbour_record_id from {{ ref('int_record_links_unioned') }}
        where record_id = any(array(select record_id from int_identifiers_guarded_taken))
        union
        select linked_record_id, record_id from {{ ref('int_record_links_unioned') }}
        where linked_record_id = any(array(select record_id from int_identifiers_guarded_taken));
        analyze int_identifiers_guarded_neighbours;
        -- the strong identifiers of the records whose identifiers reach something new: the ends of new links, the
        -- records that took a value and their neighbours
        create temporary table int_identifiers_guarded_holders on commit drop as
        select record_id, identifier_type, identifier_value from {{ ref('int_identifiers_unioned') }}
        where is_strong and record_id = any(array(
            select record_id from int_identifiers_guarded_new_links
            union
            select linked_record_id from int_identifiers_guarded_new_links
            union
            select record_id from int_identifiers_guarded_valued
            union
            select neighbours.neighbour_record_id
            from int_identifiers_guarded_neighbours as neighbours
            inner join int_identifiers_guarded_valued as valued
                on valued.record_id = neighbours.record_id
        ));
        analyze int_identifiers_guarded_holders;
        create temporary table int_identifiers_guarded_gained on commit drop as
        with
        gained as (
            -- a record that took a strong identifier: it and its neighbours are reached by it
            select taken.identifier_type, taken.identifier_value, taken.record_id as reached_record_id, true as is_own
            from int_identifiers_guarded_taken as taken
            where taken.identifier_type <> 'name'
            union all
            select taken.identifier_type, taken.identifier_value, neighbours.neighbour_record_id, false
            from int_identifiers_guarded_taken as taken
            inner join int_identifiers_guarded_neighbours as neighbours
                on neighbours.record_id = taken.record_id
            where taken.identifier_type <> 'name'
            union all
            -- a new link: each end is reached by the identifiers of the other
            select holders.identifier_type, holders.identifier_value, links.linked_record_id, false
            from int_identifiers_guarded_new_links as links
            inner join int_identifiers_guarded_holders as holders
                on holders.record_id = links.record_id
            union all
            select holders.identifier_type, holders.identifier_value, links.record_id, false
            from int_identifiers_guarded_new_links as links
            inner join int_identifiers_guarded_holders as holders
                on holders.record_id = links.linked_record_id
            union all
            -- a record that took a value: the identifiers of it and of its neighbours reach the value
            select holders.identifier_type, holders.identifier_value, valued.record_id, false
            from int_identifiers_guarded_valued as valued
            inner join int_identifiers_guarded_holders as holders
                on holders.record_id = valued.record_id
            union all
            select holders.identifier_type, holders.identifier_value, valued.record_id, false
            from int_identifiers_guarded_valued as valued
            inner join int_identifiers_guarded_neighbours as neighbours
                on neighbours.record_id = valued.record_id
            inner join int_identifiers_guarded_holders as holders
                on holders.record_id = neighbours.neighbour_record_id
        )
        select distinct gained.*
        from gained
        where not exists (
            select from int_identifiers_guarded_changed as changed
            where changed.identifier_type = gained.identifier_type
              and changed.identifier_value = gained.identifier_value
        );
        analyze int_identifiers_guarded_gained;
        create temporary table int_identifiers_guarded_gained_profiles on commit drop as
        {{ guard_record_profiles(ref('int_identifiers_unioned'),
                                 'select reached_record_id from int_identifiers_guarded_gained') }};
        analyze int_identifiers_guarded_gained_profiles;
        create temporary table int_identifiers_guarded_merged on commit drop as
        with
        added as (
            select
                gained.identifier_type,
                gained.identifier_value,
                count(distinct gained.reached_record_id) filter (where gained.is_own) as records_added,
                min(gained.reached_record_id collate "C") filter (where gained.is_own) as anchor_added,
                {{ guard_values('profiles.name_key') }} as name_keys,
                {{ guard_values("case when gained.identifier_type <> 'email' then profiles.email end") }} as emails,
                {{ guard_values("case when gained.identifier_type <> 'phone' then profiles.phone end") }} as phones,
                {{ guard_values("case when gained.identifier_type <> 'customer_ref' then profiles.customer_ref end") }}
                    as customer_refs
            from int_identifiers_guarded_gained as gained
            left join int_identifiers_guarded_gained_profiles as profiles
                on profiles.record_id = gained.reached_record_id
            group by gained.identifier_type, gained.identifier_value
        ),
        kept as (
            select * from {{ this }}
            where identifier_value = any(array(select identifier_value from int_identifiers_guarded_gained))
        )
        select
            added.identifier_type,
            added.identifier_value,
            coalesce(kept.records_count, 0) + added.records_added as records_count,
            least(kept.anchor_record_id, added.anchor_added) as anchor_record_id,
            {{ guard_merge('kept.name_keys', 'added.name_keys') }} as name_keys,
            {{ guard_merge('kept.emails', 'added.emails') }} as emails,
            {{ guard_merge('kept.phones', 'added.phones') }} as phones,
            {{ guard_merge('kept.customer_refs', 'added.customer_refs') }} as customer_refs
        from added
        left join kept
            on kept.identifier_type = added.identifier_type
            and kept.identifier_value = added.identifier_value
        -- (an identifier reached without a record of its own is not one: nothing carries it)
        where kept.identifier_type is not null or added.records_added > 0;
        create temporary table int_identifiers_guarded_judged on commit drop as
        select identifier_type, identifier_value from int_identifiers_guarded_changed
        union
        select identifier_type, identifier_value from int_identifiers_guarded_merged;
        analyze int_identifiers_guarded_judged;
        -- the judgements replaced, compared with the new ones by the post-hook
        create temporary table int_identifiers_guarded_before on commit drop as
        with removed as (
            delete from {{ this }}
            where identifier_value = any(array(select identifier_value from int_identifiers_guarded_judged))
              and (identifier_type, identifier_value) in (
                  select identifier_type, identifier_value from int_identifiers_guarded_judged
              )
            returning identifier_type, identifier_value, is_cut
        )
        select * from removed
    {%- else %}
        {{ send_identity_everything(['int_identity_edges_built']) }};
        -- nothing for the post-hook to compare
        create temporary table int_identifiers_guarded_judged (identifier_type text, identifier_value text)
            on commit drop;
        create temporary table int_identifiers_guarded_before (
            identifier_type text, identifier_value text, is_cut boolean
        ) on commit drop
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- The senders of the guard's mail (`shared`) and the guard take this lock first: the guard waits for the senders
    in flight and holds back new ones, so it reads the identifiers and links as they were when it took its mail (a
    gain merged twice would count a record twice). The senders share it: they need not wait for each other (at ten
    million interactions, int_record_links_unioned waited half a minute for int_identifiers_unioned to commit). -#}
{% macro identity_mail_lock(shared=false) -%}
    select pg_advisory_xact_lock{{ '_shared' if shared else '' }}(hashtext('crm_warehouse.identity_guard_mail'))
{%- endmacro %}

{#- the post-hook of int_identifiers_guarded: int_identity_edges_built is told the identifiers judged again that
    are cut now and were not, or the reverse, or are new or gone (their stars are drawn again). Every other change
    of a star comes from the records that took or dropped the identifier, which int_identifiers_unioned tells
    int_identity_edges_built itself (macro int_identifiers_unioned_written), a new anchor included: the anchor
    dropped it (the star is drawn again), or a smaller record took it (int_identity_edges_built draws the star
    again when a record that took an identifier is not after its anchor). -#}
{% macro int_identifiers_guarded_written() %}
    insert into intermediate.identity_changes (reader, identifier_type, identifier_value)
    with
    after as (
        select identifier_type, identifier_value, is_cut from {{ this }}
        where identifier_value = any(array(select identifier_value from int_identifiers_guarded_judged))
          and (identifier_type, identifier_value) in (
              select identifier_type, identifier_value from int_identifiers_guarded_judged
          )
    ),
    changed as (
        -- set operations compare nulls as equal
        (select * from int_identifiers_guarded_before except select * from after)
        union
        (select * from after except select * from int_identifiers_guarded_before)
    )
    select distinct 'int_identity_edges_built', identifier_type, identifier_value from changed
{% endmacro %}

{#- The pre-hook of int_identity_edges_built. The edges of the scope, as they are now
    (int_identity_edges_built_now): the stars drawn again (an identifier's star, or none when it is cut: those
    whose cut or anchor changed, or that a record dropped) and the links and self edge of the records sent (its
    links changed, or it became or stopped being a customer record): int_identity_edges_built_identifiers and
    _records. Compared with the scope's edges in the table (int_identity_edges_built_before): the edges gone
    are deleted, the new ones (int_identity_edges_built_added) are what the model appends, and the unchanged
    ones stay as they are. A star that did not change as a whole only gains points: a record that took the
    identifier adds one edge to the anchor, read from int_identifiers_guarded (the star's records are not
    read). int_records_clustered is told the ends of the new edges (they may join clusters)
    and, marked 'split', the ends of the edges gone that nothing replaces: an identifier edge whose two ends
    are both still on the identifier's star is replaced (a new anchor re-draws the star), any other edge gone
    (an identifier a record no longer carries or that is cut now, a link gone, a record gone) may split a
    cluster. Each condition on the table is found by its index (in one statement with `or`, PostgreSQL would
    compare every edge with every identifier) -#}
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

{% macro int_identity_edges_built_changes() %}
    {%- set incremental = identity_incremental() %}
    {{ receive_identity_changes('int_identity_edges_built_mail') }};
    {%- if incremental %}
        create temporary table int_identity_edges_built_records on commit drop as
        select distinct record_id from int_identity_edges_built_mail
        where record_id is not null and identifier_type is null;
        -- the new points of stars (a record took an identifier), with the identifier's judgement now
        create temporary table int_identity_edges_built_points on commit drop as
        select record_id, identifier_type, identifier_value from int_identity_edges_built_mail
        where record_id is not null and identifier_type is not null;
        analyze int_identity_edges_built_points;
        create temporary table int_identity_edges_built_pointed on commit drop as
        select points.record_id, points.identifier_type, points.identifier_value, guarded.is_cut,
            guarded.anchor_record_id
        from int_identity_edges_built_points as points
        left join (
            select identifier_type, identifier_value, is_cut, anchor_record_id
            from {{ ref('int_identifiers_guarded') }}
            where identifier_value = any(array(select identifier_value from int_identity_edges_built_points))
        ) as guarded
            on guarded.identifier_type = points.identifier_type
            and guarded.identifier_value = points.identifier_value;
        -- the stars drawn again: those int_identifiers_guarded (a cut, an anchor changed) or int_identifiers_unioned
        -- (a record dropped the identifier) sent, and those of the points the judgements do not explain (an
        -- identifier not judged since the record took it, a record not after the anchor)
        create temporary table int_identity_edges_built_identifiers on commit drop as
        select identifier_type, identifier_value from int_identity_edges_built_mail
        where record_id is null and identifier_type is not null
        union
        select identifier_type, identifier_value from int_identity_edges_built_pointed
        where anchor_record_id is null or record_id collate "C" <= anchor_record_id;
        analyze int_identity_edges_built_records;
        analyze int_identity_edges_built_identifiers;
        create temporary table int_identity_edges_built_now on commit drop as
        {{ identity_edges_sql(scoped=true) }};
        create temporary table int_identity_edges_built_before on commit drop as
        select edges.node_a, edges.node_b, edges.edge_type, edges.edge_detail, edges.identifier_value
        from {{ this }} as edges
        where {{ int_identity_edges_built_stars('edges') }}
        union all
        select edges.node_a, edges.node_b, edges.edge_type, edges.edge_detail, edges.identifier_value
        from {{ this }} as edges
        where {{ int_identity_edges_built_own('edges') }};
        -- set operations compare nulls (a self edge's detail) as equal
        create temporary table int_identity_edges_built_added on commit drop as
        select * from int_identity_edges_built_now
        except
        select * from int_identity_edges_built_before;
        create temporary table int_identity_edges_built_removed on commit drop as
        select * from int_identity_edges_built_before
        except
        select * from int_identity_edges_built_now;
        analyze int_identity_edges_built_removed;
        -- every other point joins its star as one edge to the anchor (unless the star is cut, or the edge is
        -- there already: a mail sent twice)
        insert into int_identity_edges_built_added
        select pointed.record_id, pointed.anchor_record_id, 'identifier', pointed.identifier_type,
            pointed.identifier_value
        from int_identity_edges_built_pointed as pointed
        where not pointed.is_cut
          and pointed.record_id collate "C" > pointed.anchor_record_id
          and (pointed.identifier_type, pointed.identifier_value) not in (
              select identifier_type, identifier_value from int_identity_edges_built_identifiers
          )
        except
        select edges.node_a, edges.node_b, edges.edge_type, edges.edge_detail, edges.identifier_value
        from {{ this }} as edges
        where edges.node_a = any(array(select record_id from int_identity_edges_built_points))
          and edges.edge_type = 'identifier';
        delete from {{ this }} as edges
        where {{ int_identity_edges_built_stars('edges') }}
          and (edges.node_a, edges.node_b, edges.edge_detail, edges.identifier_value) in (
              select node_a, node_b, edge_detail, identifier_value from int_identity_edges_built_removed
              where edge_type = 'identifier'
          );
        delete from {{ this }} as edges
        where {{ int_identity_edges_built_own('edges') }}
          and exists (
              select from int_identity_edges_built_removed as removed
              where removed.node_a = edges.node_a
                and removed.node_b = edges.node_b
                and removed.edge_type = edges.edge_type
                and removed.edge_detail is not distinct from edges.edge_detail
          );
        insert into intermediate.identity_changes (reader, record_id, identifier_type)
        with
        star_members as (
            select distinct now_.edge_detail, now_.identifier_value, ends.record_id
            from int_identity_edges_built_now as now_
            cross join lateral (values (now_.node_a), (now_.node_b)) as ends (record_id)
            where now_.edge_type = 'identifier'
        ),
        unreplaced as (
            select removed.node_a, removed.node_b
            from int_identity_edges_built_removed as removed
            where not (
                removed.edge_type = 'identifier'
                and exists (
                    select from star_members as members
                    where members.edge_detail = removed.edge_detail
                      and members.identifier_value = removed.identifier_value
                      and members.record_id = removed.node_a
                )
                and exists (
                    select from star_members as members
                    where members.edge_detail = removed.edge_detail
                      and members.identifier_value = removed.identifier_value
                      and members.record_id = removed.node_b
                )
            )
        )
        select distinct 'int_records_clustered', ends.record_id, ends.mark
        from (
            select node_a, node_b, null::text as mark from int_identity_edges_built_added
            union all
            select node_a, node_b, 'split' from unreplaced
        ) as edges
        cross join lateral (values (edges.node_a, edges.mark), (edges.node_b, edges.mark)) as ends (record_id, mark)
    {%- else %}
        {{ send_identity_everything(['int_records_clustered']) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- The pre-hook of int_records_clustered. A cluster key is the smallest record id of its component, so a
    run rewrites only the records whose key changes: the records new to the graph, and the clusters merged
    into one with a smaller key. Clusters only merge unless an edge that nothing replaces was removed
    (int_identity_edges_built marks its ends 'split'); those ends' whole clusters (int_records_clustered_split)
    are clustered again from their edges, record by record. Every other cluster the run reaches is one node
    (its key: no edge inside it was lost), so the union-find runs over
      - the records new to the graph and the records of the clusters clustered again, each its own node,
      - one node per other cluster reached,
    and the edges of the records sent and of the clusters clustered again (an edge not sent either lies inside
    an old cluster or was sent: no edge that matters is left out). A component's smallest node is its
    smallest record id (a cluster's key is its smallest record), so the keys are those a full build gives.
    Leaves int_records_clustered_written (record_id, cluster_key) for the model to append, after deleting the
    rows it replaces; int_customer_ids_assigned is told the records sent and those clustered again. -#}
{% macro int_records_clustered_changes() %}
    {{ receive_identity_changes('int_records_clustered_mail') }};
    {%- if identity_incremental() %}
        create temporary table int_records_clustered_split on commit drop as
        select record_id from int_records_clustered_mail
        where identifier_type = 'split'
        union
        select record_id from {{ this }}
        where cluster_key = any(array(
            select cluster_key from {{ this }}
            where record_id = any(array(
                select record_id from int_records_clustered_mail where identifier_type = 'split'
            ))
        ));
        create temporary table int_records_clustered_scope on commit drop as
        select record_id from int_records_clustered_mail
        where record_id is not null
        union
        select record_id from int_records_clustered_split;
        analyze int_records_clustered_scope;
        {{ send_identity_changes(['int_customer_ids_assigned'],
            'select record_id, null::text, null::text from int_records_clustered_scope') }};
        -- the clusters clustered again leave the table: their records are nodes of their own below
        delete from {{ this }}
        where record_id = any(array(select record_id from int_records_clustered_split));
        create temporary table int_records_clustered_edges on commit drop as
        select node_a, node_b from {{ ref('int_identity_edges_built') }}
        where node_a = any(array(select record_id from int_records_clustered_scope));
        -- the node of each end: its cluster's key, or itself when it is in no cluster (new, or clustered again)
        -- and is a customer record (has a self edge; an edge to anything else is not part of the graph)
        -- node_b (an anchor) is in collation "C": in the database's collation again, or the record-id indexes
        -- below cannot serve `= any(array(...))` and every row is compared with every element
        create temporary table int_records_clustered_end_ids on commit drop as
        select node_a as record_id from int_records_clustered_edges
        union
        select node_b collate "default" from int_records_clustered_edges;
        create temporary table int_records_clustered_end_clusters on commit drop as
        select record_id, cluster_key from {{ this }}
        where record_id = any(array(select record_id from int_records_clustered_end_ids));
        create temporary table int_records_clustered_end_nodes on commit drop as
        select node_a as record_id from {{ ref('int_identity_edges_built') }}
        where node_a = any(array(select record_id from int_records_clustered_end_ids))
          and edge_type = 'self';
        analyze int_records_clustered_end_ids;
        analyze int_records_clustered_end_clusters;
        analyze int_records_clustered_end_nodes;
        create temporary table int_records_clustered_ends on commit drop as
        select
            ends.record_id,
            coalesce(clusters.cluster_key, ends.record_id) as node,
            clusters.cluster_key is not null as is_cluster
        from int_records_clustered_end_ids as ends
        left join int_records_clustered_end_clusters as clusters
            on clusters.record_id = ends.record_id
        where clusters.cluster_key is not null
           or ends.record_id in (select record_id from int_records_clustered_end_nodes);
        analyze int_records_clustered_ends;
        create temporary table int_records_clustered_nodes on commit drop as
        select
            node,
            bool_or(is_cluster) as is_cluster,
            (row_number() over (order by node collate "C"))::integer as node_number
        from int_records_clustered_ends
        group by node;
        analyze int_records_clustered_nodes;
        create temporary table int_records_clustered_roots on commit drop as
        with
        numbered_edges as (
            select a.node_number as node_number_a, b.node_number as node_number_b
            from int_records_clustered_edges as edges
            inner join int_records_clustered_ends as end_a on end_a.record_id = edges.node_a
            inner join int_records_clustered_ends as end_b on end_b.record_id = edges.node_b
            inner join int_records_clustered_nodes as a on a.node = end_a.node
            inner join int_records_clustered_nodes as b on b.node = end_b.node
            where a.node_number <> b.node_number
        ),
        found as (
            {{ connected_components('int_records_clustered_nodes', 'numbered_edges') }}
        )
        select nodes.node, nodes.is_cluster, roots_.node as cluster_key
        from found
        inner join int_records_clustered_nodes as nodes on nodes.node_number = found.node_number
        inner join int_records_clustered_nodes as roots_ on roots_.node_number = found.root_number;
        analyze int_records_clustered_roots;
        -- the rows written: each record that is its own node, and every record of a cluster whose key changed
        create temporary table int_records_clustered_written on commit drop as
        select node as record_id, cluster_key from int_records_clustered_roots
        where not is_cluster;
        with moved as (
            delete from {{ this }} as clusters
            where clusters.cluster_key = any(array(
                select node from int_records_clustered_roots where is_cluster and node <> cluster_key
            ))
            returning clusters.record_id, clusters.cluster_key
        )
        insert into int_records_clustered_written
        select moved.record_id, roots_.cluster_key
        from moved
        inner join int_records_clustered_roots as roots_
            on roots_.node = moved.cluster_key
    {%- else %}
        {{ send_identity_everything(['int_customer_ids_assigned']) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- int_customer_ids_assigned takes the records int_records_clustered reached (int_customer_ids_assigned_mail) and
    reads the whole clusters they are in now (int_customer_ids_assigned_records). Every record of a cluster holds
    one customer id, and every cluster that lost or gained records this run holds a record sent, so these
    clusters hold every record of each id they held before: the ids are decided among them alone -#}
{% macro int_customer_ids_assigned_changes() %}
    {{ receive_identity_changes('int_customer_ids_assigned_mail') }};
    create temporary table int_customer_ids_assigned_records on commit drop as
    select record_id from {{ ref('int_records_clustered') }}
    where cluster_key = any(array(
        select cluster_key from {{ ref('int_records_clustered') }}
        where record_id = any(array(select record_id from int_customer_ids_assigned_mail))
    ));
    analyze int_customer_ids_assigned_records
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
        ~ " where record_id = any(array(select record_id from int_customer_ids_assigned_records))"
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
