{#- What happened to each complaint after it was opened: one row per response or resolution event.
    - follow-up dispositions naming the complaint record (case_ref), with their case_status
      (open counts as a response; responded; rectified; closed_unrectified), and a status other than
      open on the complaint call's own wrap-up;
    - the company's own replies on social (Facebook page, LinkedIn organisation, X account) to the
      complaining comment or mention.
    Incremental by customer, with int_complaint_candidates_unioned: a run recomputes the events of the
    complaints of the customers its changes reach (macros/incremental/complaint_changes.sql). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ complaint_chain_changes('complaint_id') }}"],
        post_hook=[
            "create index if not exists int_complaint_events_unioned_complaint_id on {{ this }} (complaint_id)",
            "analyze {{ this }}"
        ]
    )
}}
{%- set incremental = identity_incremental() %}
with

complaints as (

    select * from {{ ref('int_complaint_candidates_unioned') }}
    {% if incremental %}
    where {{ probe_complaint_scope('complaint_id', this.identifier) }}
    {% endif %}

),

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}
    {% if incremental %}
    where {{ probe_complaint_scope('call_record_id', this.identifier) }}
       or {{ probe_complaint_scope('case_record_id', this.identifier) }}
    {% endif %}

),

interactions as (

    select * from {{ ref('int_interactions_unioned') }}
    {% if incremental %}
    -- only the company's replies are read (by the record they answer)
    where {{ probe_complaint_scope('parent_record_id', this.identifier) }}
    {% endif %}

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
