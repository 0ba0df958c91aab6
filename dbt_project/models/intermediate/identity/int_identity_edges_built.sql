{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['node_a']}, {'columns': ['identifier_value']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_nestloop = off",
        "set local jit = off",
        "{{ int_identity_edges_built_changes() }}"],
    post_hook="analyze {{ this }}"
) }}
{%- set incremental = identity_incremental() %}
{#- The identity graph over customer records, as undirected edges (node_a, node_b):
    - one edge per record and kept strong identifier, to the identifier's anchor (its smallest record),
      so an identifier on n records makes n - 1 edges (a star), not n^2;
    - the direct record links;
    - a self edge per record, so that records without links are nodes too.
    The query is macro identity_edges_sql (macros/identity/identity_edges.sql), shared with the pre-hook.
    Incremental (macros/incremental/identity_changes.sql): the pre-hook computes again the stars that changed
    as a whole (cut or no longer cut, a new anchor, a record dropped the identifier) and the links and self
    edges of the records whose links changed or that became or stopped being a customer record upstream,
    compares them with the table, deletes the edges that are gone and leaves the new ones for the model to
    append; an edge that did not change is not written, and a record that
    took an identifier whose star did not change otherwise adds its one edge to the anchor without the star
    being read. -#}
{% if incremental %}
-- the edges that are new (the pre-hook found them)
select * from int_identity_edges_built_added
{% else %}
{{ identity_edges_sql(scoped=false) }}
{% endif %}
