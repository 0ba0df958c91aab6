{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['record_id']}, {'columns': ['cluster_key']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_nestloop = off",
        "set local jit = off",
        "{{ int_records_clustered_changes() }}"],
    post_hook="analyze {{ this }}"
) }}
{%- set incremental = identity_incremental() %}
{#- Connected components of the identity graph. The records are numbered once, in byte order of their
    record id (every record has a self edge), the other edges become pairs of numbers, and
    intermediate.crm_union_find (macro create_udfs: union-find with path halving over an in-memory integer
    array) gives every number the smallest number of its component. The cluster key is the smallest
    record id of the component; it is not stable across runs (int_customer_ids_assigned gives the
    stable id), but a record joining a cluster moves it only when the record's id is smaller.
    Incremental (macros/incremental/identity_changes.sql, int_records_clustered_changes): the pre-hook merges
    the clusters the new edges reach, and clusters again from their edges only the clusters that lost an
    edge nothing replaced; it leaves the rows whose key is new in int_records_clustered_written, which is
    what the model appends. -#}
{% if incremental %}
-- the rows whose key is new (the pre-hook found them)
select record_id, cluster_key from int_records_clustered_written
{% else %}
with

edges as not materialized (

    -- read twice from the table rather than copied once into a work table
    select * from {{ ref('int_identity_edges_built') }}

),

nodes as materialized (

    -- numbered in byte order (collation "C"), so that a component's smallest number is its smallest id
    select
        node_a as record_id,
        (row_number() over (order by node_a collate "C"))::integer as node_number
    from edges
    where edge_type = 'self'

),

numbered_edges as (

    select
        a.node_number as node_number_a,
        b.node_number as node_number_b
    from edges
    inner join nodes as a
        on a.record_id = edges.node_a
    inner join nodes as b
        on b.record_id = edges.node_b
    where edges.edge_type <> 'self'

),

components as materialized (

    {{ connected_components('nodes', 'numbered_edges') }}

),

final as (

    select
        nodes.record_id,
        roots.record_id as cluster_key

    from components
    inner join nodes
        on nodes.node_number = components.node_number
    inner join nodes as roots
        on roots.node_number = components.root_number

)

select * from final
{% endif %}
