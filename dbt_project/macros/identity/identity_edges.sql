{#- The edges of the identity graph (model int_identity_edges_built, whose header says what they are).
    `scoped`: only the edges of the identifiers judged again and of the records rewritten (temporary tables
    int_identity_edges_built_identifiers and _records, made by the model's pre-hook, which compares them
    with the table: macro int_identity_edges_built_changes). The model reads them from here on a full build,
    the pre-hook on an incremental one. -#}
{% macro identity_edges_sql(scoped) %}
with

interactions as (

    select record_id from {{ ref('int_interactions_unioned') }}
    where is_customer_record
    {% if scoped %}
      and record_id = any(array(select record_id from int_identity_edges_built_records))
    {% endif %}

),

identifiers as (

    select * from {{ ref('int_identifiers_unioned') }}
    where is_strong
    {% if scoped %}
      -- every record carrying an identifier judged again (its anchor is the smallest of them)
      and identifier_value = any(array(select identifier_value from int_identity_edges_built_identifiers))
      and (identifier_type, identifier_value) in (
          select identifier_type, identifier_value from int_identity_edges_built_identifiers
      )
    {% endif %}

),

guarded as (

    select * from {{ ref('int_identifiers_guarded') }}
    {% if scoped %}
    where identifier_value = any(array(select identifier_value from int_identity_edges_built_identifiers))
    {% endif %}

),

links as (

    select * from {{ ref('int_record_links_unioned') }}
    {% if scoped %}
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
{% endmacro %}
