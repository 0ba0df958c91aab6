{{
    config(
        materialized='incremental',
        unique_key='interaction_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id']}, {'columns': ['occurred_at']}],
        post_hook="{{ delete_rows_gone('interaction_id', ref('int_interactions_unioned'), 'record_id') }}"
    )
}}
{#- Incremental: a run re-writes touchpoints that arrived since the last run, those whose customer
    changed (merge or split), those that became complaints (a wrap-up arrives after its call) and those
    that stopped being one, and deletes those no longer in int_interactions_unioned. -#}
with

interactions as (

    select * from {{ ref('int_interactions_unioned') }}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}

),

complaints as (

    select * from {{ ref('int_complaint_candidates_unioned') }}

),

channels as (

    select * from {{ ref('channels') }}

),

joined as (

    select
        interactions.record_id as interaction_id,
        coalesce(own.customer_id, answered.customer_id) as customer_id,
        interactions.source_system,
        interactions.channel,
        channels.channel_group,
        interactions.direction,
        channels.stance,
        interactions.interaction_type,
        interactions.occurred_at,
        (interactions.occurred_at at time zone 'UTC')::date as occurred_date,
        interactions.duration_seconds,
        complaints.complaint_id is not null as is_complaint,
        interactions.parent_record_id as answered_interaction_id,
        interactions.sentiment_score,
        interactions.social_reach,
        greatest(
            interactions.extracted_at, own.changed_at, answered.changed_at, complaints.detected_at
        ) as updated_at

    from interactions
    left join customer_ids as own
        on own.record_id = interactions.record_id
    left join customer_ids as answered
        on answered.record_id = interactions.parent_record_id
    left join complaints
        on complaints.complaint_id = interactions.record_id
    left join channels
        on channels.channel = interactions.channel
        and channels.direction = interactions.direction

),

final as (

    select * from joined
    {% if is_incremental() %}
    -- a touchpoint that stopped being a complaint (a survey found to be another complaint's feedback)
    where (not is_complaint and interaction_id in (select interaction_id from {{ this }} where is_complaint))
       or updated_at > (
        select coalesce(max(updated_at), '-infinity'::timestamptz)
            - interval '{{ var("incremental_lookback_hours") }} hours'
        from {{ this }}
    )
    {% endif %}

)

select * from final
