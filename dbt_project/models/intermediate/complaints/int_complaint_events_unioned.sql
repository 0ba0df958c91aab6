{#- What happened to each complaint after it was opened: one row per response or resolution event.
    - follow-up dispositions naming the complaint record (case_ref), with their case_status
      (open counts as a response; responded; rectified; closed_unrectified), and a status other than
      open on the complaint call's own wrap-up;
    - the company's own replies on social (Facebook page, LinkedIn organisation, X account) to the
      complaining comment or mention. -#}
with

complaints as (

    select * from {{ ref('int_complaint_candidates_unioned') }}

),

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}

),

interactions as (

    select * from {{ ref('int_interactions_unioned') }}

),

disposition_events as (

    select
        dispositions.disposition_id as event_id,
        complaints.complaint_id,
        dispositions.wrapped_at as event_at,
        case
            when dispositions.case_status in ('rectified', 'closed_unrectified') then dispositions.case_status
            else 'responded'
        end as event_status,
        case when dispositions.is_case_follow_up then 'follow_up_call' else 'complaint_call' end as event_source

    from dispositions
    inner join complaints
        on complaints.complaint_id = coalesce(dispositions.case_record_id, dispositions.call_record_id)
    where dispositions.is_case_follow_up
       or (dispositions.is_complaint and coalesce(dispositions.case_status, 'open') <> 'open')

),

social_events as (

    select
        interactions.record_id,
        complaints.complaint_id,
        interactions.occurred_at,
        'responded',
        'company_reply'

    from interactions
    inner join complaints
        on complaints.complaint_id = interactions.parent_record_id
    where interactions.interaction_type = 'social_reply'

),

final as (

    select * from disposition_events
    union all
    select * from social_events

)

select * from final
where event_at is not null
