{{ config(pre_hook="set local work_mem = '256MB'", post_hook="analyze {{ this }}") }}
{#- Connected components of the identity graph, computed in the database by
    intermediate.crm_connected_components (macro create_udfs: union-find with path halving over an
    in-memory array; 1M records in about 9 s). The cluster key is the smallest record id of the
    component; it is not stable across runs (int_customer_ids_assigned gives the stable id). -#}
with

components as (

    select
        node as record_id,
        component as cluster_key
    from intermediate.crm_connected_components('{{ ref("int_identity_edges_built") }}'::regclass)

),

final as (

    select
        record_id,
        cluster_key,
        count(*) over (partition by cluster_key) as cluster_size
    from components

)

select * from final
