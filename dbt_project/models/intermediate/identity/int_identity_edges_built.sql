{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['node_a']}, {'columns': ['identifier_value']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_nestloop = off",
        "set local jit = off",
        "{{ int_identity_edges_built_changes() }}"],
    post_hook=["{{ int_identity_edges_built_written() }}", "analyze {{ this }}"]
) }}
{%- set incremental = identity_incremental() %}
{#- The identity graph over customer records, as undirected edges (node_a, node_b):
    - one edge per record and kept strong identifier, to the identifier's anchor (its smallest record),
      so an identifier on n records makes n - 1 edges (a star), not n^2;
    - the direct record links;
    - a self edge per record, so that records without links are nodes too.
    Incremental (macros/incremental/identity_changes.sql): a run writes again the stars of the identifiers
    int_identifiers_guarded judged again, and the links and self edges of the records rewritten upstream. -#}
with

interactions as (

    select record_id from {{ ref('int_interactions_unioned') }}
    where is_customer_record
    {% if incremental %}
      and record_id = any(array(select record_id from int_identity_edges_built_records))
    {% endif %}

),

identifiers as (

    select * from {{ ref('int_identifiers_unioned') }}
    where is_strong
    {% if incremental %}
      -- every record carrying an identifier judged again (its anchor is the smallest of them)
      and identifier_value = any(array(select identifier_value from int_identity_edges_built_identifiers))
      and (identifier_type, identifier_value) in (
          select identifier_type, identifier_value from int_identity_edges_built_identifiers
      )
    {% endif %}

),

guarded as (

    select * from {{ ref('int_identifiers_guarded') }}
    {% if incremental %}
    where identifier_value = any(array(select identifier_value from int_identity_edges_built_identifiers))
    {% endif %}

),

links as (

    select * from {{ ref('int_record_links_unioned') }}
    {% if incremental %}
    where record_id = any(array(select record_id from int_identity_edges_built_records))
    {% endif %}

),

kept as (

    select identifiers.*
    from identifiers
    inner join guarded
        on guarded.identifier_type = identifiers.identifier_type
        and guarded.identifier_value = identifiers.identifier_value
    where not guarded.is_cut

),

anchors as (

    -- hash aggregate: no sort of the identifiers
    select
        identifier_type,
        identifier_value,
        min(record_id collate "C") as anchor_record_id
    from kept
    group by identifier_type, identifier_value

),

anchored as (

    select
        kept.record_id,
        kept.identifier_type,
        kept.identifier_value,
        anchors.anchor_record_id
    from kept
    inner join anchors
        on anchors.identifier_type = kept.identifier_type
        and anchors.identifier_value = kept.identifier_value

),

edges as (

    select record_id as node_a, anchor_record_id as node_b, 'identifier' as edge_type,
        identifier_type as edge_detail, identifier_value
    from anchored
    where record_id <> anchor_record_id

    union all

    select record_id, linked_record_id, 'link', link_type, null
    from links

    union all

    select record_id, record_id, 'self', null, null
    from interactions

)

select * from edges
