{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id']}],
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ dim_customers_changes() }}"],
        post_hook=["{{ dim_customers_written() }}",
            "create unique index if not exists dim_customers_customer_id_key on {{ this }} (customer_id)",
            "analyze {{ this }}"]
    )
}}
{%- set incremental = identity_incremental() %}
-- depends_on: {{ ref('int_dispositions_unioned') }}
{# The unified customer. Segment (first rule that holds): churned (asked to cancel), detractor (latest
    NPS 0..6), promoter (latest NPS 9..10 and no unresolved complaint), complainant (any complaint), new
    (first contact within var new_customer_days of the latest data, and the warehouse saw at least that
    many days before it: without history nobody can be called new), regular. At risk: not churned and
    an unresolved or unrectified complaint, a latest NPS <= 6, a latest CSAT <= 2, or 2+ complaints in
    the var recent_complaints_days (90) days before the latest data. "Latest data" is the newest touchpoint
    in the warehouse, so a re-run on the same data gives the same answer.
    Incremental: a run recomputes only the customers whose records, wrap-ups or customer ids changed, and
    those whose segment or recent complaints the moving "latest data" can change; customers that are gone are
    deleted (macro dim_customers_changes in macros/incremental/identity_changes.sql). -#}
with

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}
    {% if incremental %}
    where customer_id = any(array(select customer_id from dim_customers_touched))
    {% endif %}

),

identifiers as (

    -- not the guessed readings of a phone number libphonenumber could not pin down
    select * from {{ ref('int_identifiers_unioned') }}
    where is_exact
    {% if incremental %}
      and record_id = any(array(select record_id from customer_ids))
    {% endif %}

),

interactions as (

    select * from {{ ref('fct_interactions') }}
    {% if incremental %}
    where customer_id = any(array(select customer_id from dim_customers_touched))
    {% endif %}

),

int_interactions as (

    select * from {{ ref('int_interactions_unioned') }}
    {% if incremental %}
    where record_id = any(array(select record_id from customer_ids))
    {% endif %}

),

survey_feedback as (

    select * from {{ ref('fct_survey_feedback') }}
    {% if incremental %}
    where customer_id = any(array(select customer_id from dim_customers_touched))
    {% endif %}

),

complaints as (

    select * from {{ ref('fct_complaints') }}
    {% if incremental %}
    -- not indexed: a hash semi-join (= any(array(...)) would compare every row with every customer)
    where customer_id in (select customer_id from dim_customers_touched)
    {% endif %}

),

cancellations as (

    select * from {{ ref('int_customer_cancellations') }}
    {% if incremental %}
    where customer_id in (select customer_id from dim_customers_touched)
    {% endif %}

),

as_of as (

    -- over every touchpoint
    select min(occurred_at) as history_start_at, max(occurred_at) as as_of_at from {{ ref('fct_interactions') }}

),

customer_identifiers as (

    select
        customer_ids.customer_id,
        identifiers.identifier_type,
        identifiers.identifier_value,
        count(*) as records_count,
        max(int_interactions.occurred_at) as last_seen_at

    from identifiers
    inner join customer_ids
        on customer_ids.record_id = identifiers.record_id
    inner join int_interactions
        on int_interactions.record_id = identifiers.record_id
    where identifiers.is_strong
    group by 1, 2, 3

),

identifier_summary as (

    select
        customer_id,
        (array_agg(identifier_value order by records_count desc, last_seen_at desc nulls last)
            filter (where identifier_type = 'email'))[1] as primary_email,
        (array_agg(identifier_value order by records_count desc, last_seen_at desc nulls last)
            filter (where identifier_type = 'phone'))[1] as primary_phone,
        (array_agg(identifier_value order by records_count desc, last_seen_at desc nulls last)
            filter (where identifier_type = 'x_handle'))[1] as x_handle,
        count(*) filter (where identifier_type = 'email') as emails_count,
        count(*) filter (where identifier_type = 'phone') as phones_count,
        string_agg(identifier_type || ':' || identifier_value, ', ' order by identifier_type, identifier_value)
            as identifiers

    from customer_identifiers
    group by customer_id

),

names as (

    select
        customer_ids.customer_id,
        (array_agg(int_interactions.person_name order by int_interactions.occurred_at desc nulls last)
            filter (where int_interactions.person_name is not null
                and int_interactions.source_system in ('qualtrics', 'typeform')))[1] as stated_name,
        (array_agg(int_interactions.person_name order by int_interactions.occurred_at desc nulls last)
            filter (where int_interactions.person_name is not null))[1] as any_name

    from int_interactions
    inner join customer_ids
        on customer_ids.record_id = int_interactions.record_id
    group by 1

),

activity as (

    select
        customer_id,
        min(occurred_at) as first_contact_at,
        max(occurred_at) as last_contact_at,
        count(*) as interactions_count,
        count(*) filter (where direction = 'inbound') as inbound_interactions_count,
        array_agg(distinct channel order by channel) as channels
    from interactions
    where customer_id is not null
    group by customer_id

),

preferred as (

    select distinct on (customer_id)
        customer_id,
        channel as preferred_channel
    from interactions
    where customer_id is not null and direction = 'inbound'
    group by customer_id, channel
    order by customer_id, count(*) desc, max(occurred_at) desc, channel

),

surveys as (

    select
        customer_id,
        count(*) as survey_responses_count,
        round(avg(csat_score), 2) as csat_avg,
        (array_agg(csat_score order by recorded_at desc) filter (where csat_score is not null))[1] as latest_csat_score,
        (array_agg(nps_score order by recorded_at desc) filter (where nps_score is not null))[1] as latest_nps_score
    from survey_feedback
    where customer_id is not null
    group by customer_id

),

complaint_summary as (

    select
        complaints.customer_id,
        count(*) as complaints_count,
        count(*) filter (where not complaints.is_resolved) as unresolved_complaints_count,
        count(*) filter (where complaints.is_rectified) as rectified_complaints_count,
        count(*) filter (where complaints.complaint_status = 'closed_unrectified') as unrectified_complaints_count,
        count(*) filter (where complaints.channel_group = 'social') as social_complaints_count,
        count(*) filter (
            where complaints.opened_at >= as_of.as_of_at - interval '{{ var("recent_complaints_days") }} days'
        ) as recent_complaints_count,
        max(complaints.opened_at) as last_complaint_at
    from complaints
    cross join as_of
    where complaints.customer_id is not null
    group by complaints.customer_id

),

cancelled as (

    select customer_id, min(cancelled_at) as cancel_requested_at
    from cancellations
    group by customer_id

),

customers as (

    select distinct customer_id from customer_ids

),

joined as (

    select
        customers.customer_id,
        coalesce(names.stated_name, names.any_name) as full_name,
        identifier_summary.primary_email,
        identifier_summary.primary_phone,
        identifier_summary.x_handle,
        coalesce(identifier_summary.emails_count, 0) as emails_count,
        coalesce(identifier_summary.phones_count, 0) as phones_count,
        coalesce(identifier_summary.identifiers, '') as identifiers,
        activity.first_contact_at,
        activity.last_contact_at,
        coalesce(activity.interactions_count, 0) as interactions_count,
        coalesce(activity.inbound_interactions_count, 0) as inbound_interactions_count,
        array_to_string(activity.channels, ',') as channels,
        preferred.preferred_channel,
        coalesce(surveys.survey_responses_count, 0) as survey_responses_count,
        surveys.csat_avg,
        surveys.latest_csat_score,
        surveys.latest_nps_score,
        case
            when surveys.latest_nps_score >= 9 then 'promoter'
            when surveys.latest_nps_score >= 7 then 'passive'
            when surveys.latest_nps_score >= 0 then 'detractor'
        end as latest_nps_category,
        coalesce(complaint_summary.complaints_count, 0) as complaints_count,
        coalesce(complaint_summary.unresolved_complaints_count, 0) as unresolved_complaints_count,
        coalesce(complaint_summary.rectified_complaints_count, 0) as rectified_complaints_count,
        coalesce(complaint_summary.unrectified_complaints_count, 0) as unrectified_complaints_count,
        coalesce(complaint_summary.social_complaints_count, 0) as social_complaints_count,
        coalesce(complaint_summary.recent_complaints_count, 0) as recent_complaints_count,
        complaint_summary.last_complaint_at,
        cancelled.cancel_requested_at,
        cancelled.cancel_requested_at is not null as has_requested_cancel,
        as_of.history_start_at,
        as_of.as_of_at

    from customers
    cross join as_of
    left join names on names.customer_id = customers.customer_id
    left join identifier_summary on identifier_summary.customer_id = customers.customer_id
    left join activity on activity.customer_id = customers.customer_id
    left join preferred on preferred.customer_id = customers.customer_id
    left join surveys on surveys.customer_id = customers.customer_id
    left join complaint_summary on complaint_summary.customer_id = customers.customer_id
    left join cancelled on cancelled.customer_id = customers.customer_id

),

final as (

    select
        customer_id,
        full_name,
        primary_email,
        primary_phone,
        x_handle,
        emails_count,
        phones_count,
        identifiers,
        first_contact_at,
        last_contact_at,
        interactions_count,
        inbound_interactions_count,
        channels,
        preferred_channel,
        survey_responses_count,
        csat_avg,
        latest_csat_score,
        latest_nps_score,
        latest_nps_category,
        complaints_count,
        unresolved_complaints_count,
        rectified_complaints_count,
        unrectified_complaints_count,
        social_complaints_count,
        recent_complaints_count,
        last_complaint_at,
        cancel_requested_at,
        has_requested_cancel,
        case
            when has_requested_cancel then 'churned'
            when latest_nps_score <= 6 then 'detractor'
            when latest_nps_score >= 9 and unresolved_complaints_count = 0 then 'promoter'
            when complaints_count > 0 then 'complainant'
            when first_contact_at >= as_of_at - interval '{{ var("new_customer_days") }} days'
                and first_contact_at >= history_start_at + interval '{{ var("new_customer_days") }} days'
                then 'new'
            else 'regular'
        end as segment,
        (
            not has_requested_cancel
            and (
                unresolved_complaints_count > 0
                or unrectified_complaints_count > 0
                or coalesce(latest_nps_score <= 6, false)
                or coalesce(latest_csat_score <= 2, false)
                or recent_complaints_count >= 2
            )
        ) as is_at_risk

    from joined

)

select * from final
