{{
    config(
        materialized='incremental',
        unique_key='record_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        full_refresh=false,
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ int_customer_ids_assigned_changes() }}"],
        post_hook=[
            "create index if not exists int_customer_ids_assigned_record_id on {{ this }} (record_id)",
            "create index if not exists int_customer_ids_assigned_customer_id on {{ this }} (customer_id)",
            "{{ int_customer_ids_assigned_written() }}",
            "analyze {{ this }}"
        ]
    )
}}
{%- set incremental = identity_incremental() %}
{#- The stable customer id of every customer record. The table is the persistent mapping: a run writes
    only records that are new or whose customer changed, so an id survives re-runs and changes only on a
    real merge or split (full_refresh is disabled: rebuilding would forget the ids BI already saw).
    Rules, per current cluster:
      - each previous id stays with the cluster that holds most of its records (ties: smallest key);
      - a cluster that keeps several previous ids keeps the one with most records (a merge: the others
        are absorbed; ties: smallest id);
      - a cluster that keeps no previous id gets a new id: md5 of its key, plus the id it split from.
    int_customer_merges records the merges and splits.
    A run reads only the clusters holding a record int_records_clustered reached (macro
    int_customer_ids_assigned_changes): every previous id among them has all its records among them, so the
    rules above give what they would give over every cluster. After a full build of
    int_records_clustered it reads every cluster (macros/incremental/identity_changes.sql). The table is never
    rebuilt, so the post-hook adds the indexes those runs need to a table that lacks them. -#}
with

clusters as (

    select * from {{ ref('int_records_clustered') }}
    {% if incremental %}
    where record_id = any(array(select record_id from int_customer_ids_assigned_records))
    {% endif %}

),

previous as (

    {% if is_incremental() %}
    select record_id, customer_id from {{ this }}
    {% if incremental %}
    where record_id = any(array(select record_id from int_customer_ids_assigned_records))
    {% endif %}
    {% else %}
    select null::text as record_id, null::text as customer_id where false
    {% endif %}

),

members as (

    select
        clusters.record_id,
        clusters.cluster_key,
        previous.customer_id as previous_customer_id

    from clusters
    left join previous
        on previous.record_id = clusters.record_id

),

cluster_overlaps as (

    select
        cluster_key,
        previous_customer_id,
        count(*) as records_count
    from members
    where previous_customer_id is not null
    group by 1, 2

),

keepers as (

    select distinct on (previous_customer_id)
        previous_customer_id,
        cluster_key,
        records_count
    from cluster_overlaps
    order by previous_customer_id, records_count desc, cluster_key

),

chosen as (

    select distinct on (cluster_key)
        cluster_key,
        previous_customer_id as customer_id
    from keepers
    order by cluster_key, records_count desc, previous_customer_id

),

cluster_ids as (

    select
        cluster_seeds.cluster_key,
        coalesce(
            chosen.customer_id,
            'cus_' || left(md5(cluster_seeds.cluster_key || coalesce('|' || cluster_seeds.split_from, '')), 16)
        ) as customer_id

    from (
        select cluster_key, min(previous_customer_id) as split_from
        from members
        group by cluster_key
    ) as cluster_seeds
    left join chosen
        on chosen.cluster_key = cluster_seeds.cluster_key

),

assigned as (

    select
        members.record_id,
        cluster_ids.customer_id,
        members.previous_customer_id,
        cast('{{ run_started_at.isoformat() }}' as timestamptz) as changed_at

    from members
    inner join cluster_ids
        on cluster_ids.cluster_key = members.cluster_key

)

select * from assigned
{% if is_incremental() %}
where previous_customer_id is distinct from customer_id
{% endif %}
