{#- A table, not incremental: complaints are a small share of the touchpoints and their lifecycle keeps
    changing (responses and resolutions arrive days later, merges change the customer). -#}
with

lifecycle as (

    select * from {{ ref('int_complaints_lifecycle') }}

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
