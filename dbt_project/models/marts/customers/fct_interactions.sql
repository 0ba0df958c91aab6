{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id']}, {'columns': ['occurred_at']}],
        pre_hook=["set local jit = off", "{{ fct_interactions_changes() }}"],
        post_hook=[
            "create unique index if not exists fct_interactions_interaction_id on {{ this }} (interaction_id)",
            "create index if not exists fct_interactions_complaints on {{ this }} (interaction_id)"
            " where is_complaint",
            "analyze {{ this }}"
        ]
    )
}}
{%- set incremental = identity_incremental() %}
{#- Incremental: a run rewrites the touchpoints int_interactions_unioned rewrote, those whose customer changed
    (merge or split) and the replies to them, and those that became complaints (a wrap-up arrives after its
    call) or stopped being one; those no longer in int_interactions_unioned are deleted (macro
    fct_interactions_changes in macros/incremental/fact_changes.sql). The indexes are created by post-hooks
    too, so a table built by an earlier version gains them. -#}
with

interactions as (

    select * from {{ ref('int_interactions_unioned') }}
    {% if incremental %}
    -- probes of the record_id index (a semi-join hashed the touched records and read the whole table)
    where record_id = any(array(select record_id from fct_interactions_touched))
    {% endif %}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}
    {% if incremental %}
    -- the touched records and the records they answer: probes of the record_id index
    where record_id = any(array(
        select record_id from fct_interactions_touched
        union
        select parent_record_id from interactions where parent_record_id is not null
    ))
    {% endif %}

),

complaints as (

    select * from {{ ref('int_complaint_candidates_unioned') }}
    {% if incremental %}
    where complaint_id = any(array(select record_id from fct_interactions_touched))
    {% endif %}

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

)

select * from final
