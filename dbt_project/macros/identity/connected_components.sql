{#- (node_number, root_number) of every node of `nodes` (a relation numbering its nodes 1..n in a column
    node_number): root_number is the smallest node number of the node's connected component over the edges
    of `numbered_edges` (a relation of node_number_a, node_number_b). intermediate.crm_union_find (macro
    create_udfs) does the work in memory; int_records_clustered uses it on a full build (every record) and its
    pre-hook on an incremental one (the clusters and records a day reaches). -#}
{% macro connected_components(nodes, numbered_edges) %}
    select
        found.node_number::integer as node_number,
        found.root_number
    from (
        select intermediate.crm_union_find(
            (select count(*) from {{ nodes }})::integer,
            array_agg(node_number_a),
            array_agg(node_number_b)
        ) as root_numbers
        from {{ numbered_edges }}
    ) as union_found
    cross join lateral unnest(union_found.root_numbers) with ordinality as found (root_number, node_number)
{% endmacro %}
