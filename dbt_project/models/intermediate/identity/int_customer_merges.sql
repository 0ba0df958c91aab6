{{
    config(
        materialized='incremental',
        unique_key='merge_event_id',
        incremental_strategy='delete+insert',
        full_refresh=false
    )
}}
{#- The log of identity changes: records that moved from one customer id to another. A merge when the
    old id disappeared (absorbed into the new one), a split when the old id still exists (some of its
    records left it). Append-only: each run adds the changes int_customer_ids_assigned made since the
    last recorded change. -#}
with

assignments as (

    select * from {{ ref('int_customer_ids_assigned') }}

),

changes as (

    select * from assignments
    where previous_customer_id is not null
      and previous_customer_id <> customer_id
    {% if is_incremental() %}
      and changed_at > (select coalesce(max(changed_at), '-infinity'::timestamptz) from {{ this }})
    {% endif %}

),

surviving as (

    select distinct customer_id from assignments

),

grouped as (

    select
        previous_customer_id as from_customer_id,
        customer_id as to_customer_id,
        changed_at,
        count(*) as records_moved
    from changes
    group by 1, 2, 3

),

final as (

    select
        md5(grouped.from_customer_id || '>' || grouped.to_customer_id || '@' || grouped.changed_at::text)
            as merge_event_id,
        case when surviving.customer_id is null then 'merge' else 'split' end as event_type,
        grouped.from_customer_id,
        grouped.to_customer_id,
        grouped.records_moved,
        grouped.changed_at

    from grouped
    left join surviving
        on surviving.customer_id = grouped.from_customer_id

)

select * from final
