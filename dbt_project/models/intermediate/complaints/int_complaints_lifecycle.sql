{#- One complaint with its lifecycle: first response, resolution, status, repeat, and whether the
    customer stayed afterwards. Status rules: rectified or closed_unrectified when a resolution event
    exists (the latest one wins), responded when only responses exist, open otherwise. Events dated
    before the opening are ignored.
    Retention: a cancel_request is the outcome of one complaint, the customer's complaint settled last
    before it (settled: resolved, or opened when it was not resolved by then). A customer who stayed
    after a rectified complaint and left after a later, unrectified one was retained by the first;
    a complaint is retained afterwards when no cancellation is the outcome of it.
    Incremental by customer: a run recomputes the complaints of the customers its changes reach (all of a
    customer's complaints are among its records, its cancellations are read by customer:
    macros/incremental/complaint_changes.sql). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ complaint_chain_changes('complaint_id', 'customer_id') }}"],
        post_hook=[
            "create index if not exists int_complaints_lifecycle_complaint_id on {{ this }} (complaint_id)",
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

events as (

    select * from {{ ref('int_complaint_events_unioned') }}
    {% if incremental %}
    where {{ probe_complaint_scope('complaint_id', this.identifier) }}
    {% endif %}

),

cancellations as (

    select * from {{ ref('int_customer_cancellations') }}
    {% if incremental %}
    where {{ of_complaint_scope_customer('customer_id', this.identifier) }}
    {% endif %}

),

event_summary as (

    select
        events.complaint_id,
        min(events.event_at) as first_response_at,
        min(events.event_at) filter (where events.event_status in ('rectified', 'closed_unrectified'))
            as resolved_at,
        (array_agg(events.event_status order by events.event_at desc, events.event_status desc)
            filter (where events.event_status in ('rectified', 'closed_unrectified')))[1] as resolution_status,
        count(*) as events_count

    from events
    inner join complaints
        on complaints.complaint_id = events.complaint_id
        -- an event before the complaint opened cannot answer it (clock skew between feeds)
        and events.event_at >= complaints.opened_at
    group by events.complaint_id

),

repeats as (

    select
        complaint_id,
        lag(opened_at) over (partition by customer_id order by opened_at, complaint_id) as previous_complaint_at
    from complaints
    where customer_id is not null

),

cancellation_outcomes as (

    select distinct on (cancellations.disposition_id)
        cancellations.disposition_id,
        cancellations.cancelled_at,
        complaints.complaint_id

    from cancellations
    inner join complaints
        on complaints.customer_id = cancellations.customer_id
        and complaints.opened_at <= cancellations.cancelled_at
    left join event_summary
        on event_summary.complaint_id = complaints.complaint_id
    order by
        cancellations.disposition_id,
        case
            when event_summary.resolved_at <= cancellations.cancelled_at then event_summary.resolved_at
            else complaints.opened_at
        end desc,
        complaints.opened_at desc,
        complaints.complaint_id desc

),

cancelled_after as (

    select
        complaint_id,
        min(cancelled_at) as cancelled_at

    from cancellation_outcomes
    group by complaint_id

),

final as (

    select
        complaints.complaint_id,
        complaints.customer_id,
        complaints.channel,
        complaints.complaint_source,
        complaints.problem_category,
        complaints.opened_at,
        event_summary.first_response_at,
        event_summary.resolved_at,
        case
            when event_summary.resolution_status is not null then event_summary.resolution_status
            when event_summary.first_response_at is not null then 'responded'
            else 'open'
        end as complaint_status,
        coalesce(event_summary.events_count, 0) as events_count,
        coalesce(
            repeats.previous_complaint_at >= complaints.opened_at - interval '{{ var("repeat_window_days") }} days',
            false
        ) as is_repeat,
        cancelled_after.cancelled_at,
        cancelled_after.cancelled_at is null as is_retained_afterwards,
        complaints.complaint_text,
        complaints.required_to_satisfy,
        complaints.necessary_to_rectify,
        complaints.how_to_avoid,
        complaints.csat_score,
        complaints.sentiment_score,
        complaints.social_reach,
        complaints.detected_at

    from complaints
    left join event_summary
        on event_summary.complaint_id = complaints.complaint_id
    left join repeats
        on repeats.complaint_id = complaints.complaint_id
    left join cancelled_after
        on cancelled_after.complaint_id = complaints.complaint_id

)

select * from final
