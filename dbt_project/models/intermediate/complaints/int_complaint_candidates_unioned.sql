{#- Complaints from every channel, one per originating record (complaint_id = that record's id):
    - calls wrapped up with code complaint (phone system and outsourced call center);
    - complaint forms on the website, completed or partial (a started complaint is a complaint);
    - survey responses reporting a problem (QID3 = 1) or a low CSAT (<= var low_csat_max), unless the
      survey followed a call or form that is already a complaint: then it is that complaint's
      feedback (what would satisfy the customer, what would rectify it, how to avoid it), not a new one;
    - customers' social mentions and comments with VADER compound <= var social_negative_threshold
      (-0.05, VADER's own cut-off for negative text).
    detected_at is when the evidence reached the warehouse (drives the incremental facts). -#}
with

interactions as (

    select * from {{ ref('int_interactions_unioned') }}

),

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}

),

survey_responses as (

    select * from {{ ref('int_survey_responses_unioned') }}

),

form_responses as (

    select * from {{ ref('stg_web_forms__responses') }}

),

web_forms as (

    select * from {{ ref('web_forms') }}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}

),

followed_by_survey as (

    select distinct on (followed.record_id)
        followed.record_id as followed_record_id,
        survey_responses.record_id as survey_record_id,
        survey_responses.csat_score,
        survey_responses.required_to_satisfy,
        survey_responses.necessary_to_rectify,
        survey_responses.how_to_avoid

    from survey_responses
    inner join interactions as followed
        on followed.reference_key = survey_responses.external_reference
        and followed.channel in ('phone', 'call_center', 'web_form')
    order by followed.record_id, survey_responses.recorded_at

),

call_complaints as (

    select distinct on (interactions.record_id)
        interactions.record_id as complaint_id,
        interactions.channel,
        'call_disposition' as complaint_source,
        coalesce(interactions.occurred_at, dispositions.wrapped_at) as opened_at,
        coalesce(dispositions.problem_category, 'other') as problem_category,
        dispositions.notes as complaint_text,
        dispositions.extracted_at as detected_at,
        null::double precision as sentiment_score,
        0 as social_reach

    from dispositions
    inner join interactions
        on interactions.record_id = coalesce(dispositions.case_record_id, dispositions.call_record_id)
        and interactions.is_customer_record
    where dispositions.is_complaint
    order by interactions.record_id, dispositions.wrapped_at, dispositions.disposition_id

),

form_complaints as (

    select
        form_responses.record_id,
        'web_form',
        'complaint_form',
        coalesce(form_responses.submitted_at, form_responses.landed_at),
        coalesce(form_responses.problem_category, 'other'),
        form_responses.message,
        form_responses.extracted_at,
        null::double precision,
        0

    from form_responses
    inner join web_forms
        on web_forms.form_id = form_responses.form_id
    where web_forms.form_kind = 'complaint'

),

direct_complaints as (

    select * from call_complaints
    union all
    select * from form_complaints

),

survey_complaints as (

    select
        survey_responses.record_id,
        'survey',
        case when survey_responses.has_reported_problem then 'survey_problem' else 'survey_low_csat' end,
        coalesce(survey_responses.recorded_at, survey_responses.ended_at),
        coalesce(survey_responses.problem_category, 'other'),
        survey_responses.problem_description,
        survey_responses.extracted_at,
        null::double precision,
        0

    from survey_responses
    left join followed_by_survey
        on followed_by_survey.survey_record_id = survey_responses.record_id
    left join direct_complaints
        on direct_complaints.complaint_id = followed_by_survey.followed_record_id
    where (survey_responses.has_reported_problem or survey_responses.csat_score <= {{ var('low_csat_max') }})
      and direct_complaints.complaint_id is null

),

social_complaints as (

    select
        record_id,
        channel,
        'negative_social',
        occurred_at,
        'other',
        body_text,
        extracted_at,
        sentiment_score,
        coalesce(social_reach, 0)

    from interactions
    where channel in ('x', 'facebook', 'linkedin')
      and is_customer_record
      and sentiment_score <= {{ var('social_negative_threshold') }}

),

unioned as (

    select * from direct_complaints
    union all
    select * from survey_complaints
    union all
    select * from social_complaints

),

deduplicated as (

    select distinct on (complaint_id) *
    from unioned
    order by complaint_id, opened_at

),

final as (

    select
        deduplicated.complaint_id,
        deduplicated.channel,
        deduplicated.complaint_source,
        deduplicated.opened_at,
        deduplicated.problem_category,
        deduplicated.complaint_text,
        coalesce(own_survey.required_to_satisfy, followed_by_survey.required_to_satisfy) as required_to_satisfy,
        coalesce(own_survey.necessary_to_rectify, followed_by_survey.necessary_to_rectify) as necessary_to_rectify,
        coalesce(own_survey.how_to_avoid, followed_by_survey.how_to_avoid) as how_to_avoid,
        coalesce(own_survey.csat_score, followed_by_survey.csat_score) as csat_score,
        deduplicated.sentiment_score,
        deduplicated.social_reach,
        deduplicated.detected_at,
        customer_ids.customer_id

    from deduplicated
    left join survey_responses as own_survey
        on own_survey.record_id = deduplicated.complaint_id
    left join followed_by_survey
        on followed_by_survey.followed_record_id = deduplicated.complaint_id
    left join customer_ids
        on customer_ids.record_id = deduplicated.complaint_id

)

select * from final
