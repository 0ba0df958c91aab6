{#- Daily service quality per channel. Six Sigma view: every inbound touchpoint is an opportunity for a
    defect and every complaint opened that day is a defect; DPMO = defects / opportunities x 10^6 and
    the sigma level = Phi^-1(1 - DPMO / 10^6) + 1.5 (the conventional 1.5 sigma shift), clamped to
    [0, 6] (6 when no defect was seen). CSAT and NPS come from surveys attributed to the channel of the
    interaction they followed (surveys that followed nothing count under 'survey'). -#}
with

interactions as (

    select * from {{ ref('fct_interactions') }}

),

complaints as (

    select * from {{ ref('fct_complaints') }}

),

survey_feedback as (

    select * from {{ ref('fct_survey_feedback') }}

),

channels as (

    select distinct channel, channel_group from {{ ref('channels') }}

),

interaction_days as (

    select
        occurred_date as service_date,
        channel,
        count(*) as interactions_count,
        count(*) filter (where direction = 'inbound') as inbound_interactions_count,
        count(*) filter (where direction = 'outbound') as outbound_interactions_count,
        count(*) filter (where stance = 'proactive') as proactive_interactions_count,
        count(*) filter (where stance = 'reactive') as reactive_interactions_count,
        count(distinct customer_id) as customers_count
    from interactions
    where occurred_date is not null
    group by 1, 2

),

complaint_days as (

    select
        (opened_at at time zone 'UTC')::date as service_date,
        channel,
        count(*) as complaints_count,
        count(*) filter (where is_repeat) as repeat_complaints_count,
        sum(social_reach) as complaints_social_reach,
        avg(hours_to_first_response) as avg_hours_to_first_response,
        avg(hours_to_resolution) as avg_hours_to_resolution,
        count(distinct customer_id) filter (where is_rectified) as rectified_complainants,
        count(distinct customer_id) filter (where is_rectified and is_retained_afterwards)
            as rectified_retained_complainants,
        count(distinct customer_id) filter (where not is_rectified) as unrectified_complainants,
        count(distinct customer_id) filter (where not is_rectified and is_retained_afterwards)
            as unrectified_retained_complainants
    from complaints
    where opened_at is not null
    group by 1, 2

),

survey_days as (

    select
        (recorded_at at time zone 'UTC')::date as service_date,
        attributed_channel as channel,
        count(*) as survey_responses_count,
        avg(csat_score) as csat_avg,
        avg(case when is_satisfied then 1.0 when csat_score is not null then 0.0 end) as csat_satisfied_rate,
        count(nps_score) as nps_responses_count,
        100.0 * (count(*) filter (where nps_category = 'promoter') - count(*) filter (where nps_category = 'detractor'))
            / nullif(count(nps_score), 0) as nps
    from survey_feedback
    where recorded_at is not null
    group by 1, 2

),

spine as (

    select service_date, channel from interaction_days
    union
    select service_date, channel from complaint_days
    union
    select service_date, channel from survey_days

),

measured as (

    select
        spine.service_date,
        spine.channel,
        coalesce(interaction_days.interactions_count, 0) as interactions_count,
        coalesce(interaction_days.inbound_interactions_count, 0) as inbound_interactions_count,
        coalesce(interaction_days.outbound_interactions_count, 0) as outbound_interactions_count,
        coalesce(interaction_days.proactive_interactions_count, 0) as proactive_interactions_count,
        coalesce(interaction_days.reactive_interactions_count, 0) as reactive_interactions_count,
        coalesce(interaction_days.customers_count, 0) as customers_count,
        coalesce(complaint_days.complaints_count, 0) as complaints_count,
        coalesce(complaint_days.repeat_complaints_count, 0) as repeat_complaints_count,
        greatest(
            coalesce(interaction_days.inbound_interactions_count, 0), coalesce(complaint_days.complaints_count, 0)
        ) as opportunities_count,
        coalesce(complaint_days.complaints_social_reach, 0) as complaints_social_reach,
        complaint_days.avg_hours_to_first_response,
        complaint_days.avg_hours_to_resolution,
        coalesce(complaint_days.rectified_complainants, 0) as rectified_complainants,
        coalesce(complaint_days.rectified_retained_complainants, 0) as rectified_retained_complainants,
        coalesce(complaint_days.unrectified_complainants, 0) as unrectified_complainants,
        coalesce(complaint_days.unrectified_retained_complainants, 0) as unrectified_retained_complainants,
        coalesce(survey_days.survey_responses_count, 0) as survey_responses_count,
        survey_days.csat_avg,
        survey_days.csat_satisfied_rate,
        coalesce(survey_days.nps_responses_count, 0) as nps_responses_count,
        survey_days.nps

    from spine
    left join interaction_days
        on interaction_days.service_date = spine.service_date and interaction_days.channel = spine.channel
    left join complaint_days
        on complaint_days.service_date = spine.service_date and complaint_days.channel = spine.channel
    left join survey_days
        on survey_days.service_date = spine.service_date and survey_days.channel = spine.channel

),

final as (

    select
        md5(measured.channel || '|' || measured.service_date::text) as service_quality_day_id,
        measured.service_date,
        measured.channel,
        channels.channel_group,
        measured.interactions_count,
        measured.inbound_interactions_count,
        measured.outbound_interactions_count,
        measured.proactive_interactions_count,
        measured.reactive_interactions_count,
        measured.customers_count,
        measured.complaints_count,
        measured.repeat_complaints_count,
        round(measured.complaints_count::numeric / nullif(measured.opportunities_count, 0), 4) as complaint_rate,
        measured.opportunities_count,
        round(1e6 * measured.complaints_count::numeric / nullif(measured.opportunities_count, 0), 1) as dpmo,
        case
            when measured.opportunities_count = 0 then null
            when measured.complaints_count = 0 then 6.0
            else round(greatest(0, least(6,
                intermediate.crm_norm_inv(greatest(1e-9, 1 - measured.complaints_count::double precision
                    / measured.opportunities_count)) + 1.5))::numeric, 2)
        end as sigma_level,
        measured.complaints_social_reach,
        round(measured.avg_hours_to_first_response, 2) as avg_hours_to_first_response,
        round(measured.avg_hours_to_resolution, 2) as avg_hours_to_resolution,
        measured.rectified_complainants,
        measured.rectified_retained_complainants,
        round(measured.rectified_retained_complainants::numeric / nullif(measured.rectified_complainants, 0), 4)
            as rectified_retention_rate,
        measured.unrectified_complainants,
        measured.unrectified_retained_complainants,
        round(measured.unrectified_retained_complainants::numeric / nullif(measured.unrectified_complainants, 0), 4)
            as unrectified_retention_rate,
        measured.survey_responses_count,
        round(measured.csat_avg, 2) as csat_avg,
        round(measured.csat_satisfied_rate, 4) as csat_satisfied_rate,
        measured.nps_responses_count,
        round(measured.nps, 1) as nps

    from measured
    left join channels
        on channels.channel = measured.channel

)

select * from final
