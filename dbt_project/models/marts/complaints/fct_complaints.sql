{#- Incremental by customer, with int_complaint_candidates_unioned: a run rewrites the complaints of the
    customers its changes reach (a complaint's lifecycle keeps changing: responses and resolutions arrive days
    later, merges change the customer; macros/incremental/complaint_changes.sql). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id']}],
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ complaint_chain_changes('complaint_id', 'customer_id') }}"],
        post_hook=[
            "create unique index if not exists fct_complaints_complaint_id on {{ this }} (complaint_id)",
            "analyze {{ this }}"
        ]
    )
}}
-- depends_on: {{ ref('int_complaint_candidates_unioned') }}
{%- set incremental = identity_incremental() %}
with

lifecycle as (

    select * from {{ ref('int_complaints_lifecycle') }}
    {% if incremental %}
    where {{ probe_complaint_scope('complaint_id', this.identifier) }}
    {% endif %}

),

channels as (

    select * from {{ ref('channels') }}
    where direction = 'inbound'

),

final as (

    select
        lifecycle.complaint_id,
        lifecycle.customer_id,
        lifecycle.channel,
        channels.channel_group,
        channels.stance,
        lifecycle.complaint_source,
        lifecycle.problem_category,
        case
            when lifecycle.social_reach >= 1000
                or lifecycle.csat_score = 1
                or lifecycle.sentiment_score <= -0.6
                or lifecycle.is_repeat
                then 'high'
            when lifecycle.social_reach >= 100
                or lifecycle.csat_score = 2
                or lifecycle.sentiment_score <= -0.3
                or lifecycle.complaint_source in ('call_disposition', 'complaint_form')
                then 'medium'
            else 'low'
        end as severity,
        lifecycle.opened_at,
        lifecycle.first_response_at,
        lifecycle.resolved_at,
        lifecycle.complaint_status,
        lifecycle.complaint_status in ('rectified', 'closed_unrectified') as is_resolved,
        lifecycle.complaint_status = 'rectified' as is_rectified,
        lifecycle.is_repeat,
        lifecycle.social_reach,
        lifecycle.is_retained_afterwards,
        lifecycle.cancelled_at,
        round((extract(epoch from lifecycle.first_response_at - lifecycle.opened_at) / 3600.0)::numeric, 2)
            as hours_to_first_response,
        round((extract(epoch from lifecycle.resolved_at - lifecycle.opened_at) / 3600.0)::numeric, 2)
            as hours_to_resolution,
        lifecycle.events_count,
        lifecycle.complaint_text,
        lifecycle.required_to_satisfy,
        lifecycle.necessary_to_rectify,
        lifecycle.how_to_avoid,
        lifecycle.csat_score,
        lifecycle.sentiment_score

    from lifecycle
    left join channels
        on channels.channel = lifecycle.channel

)

select * from final
