{#- Complaints from every channel, one per originating record (complaint_id = that record's id):
    - calls wrapped up with code complaint (phone system and outsourced call center);
    - complaint forms on the website, completed or partial (a started complaint is a complaint);
    - survey responses reporting a problem (QID3 = 1) or a low CSAT (<= var low_csat_max), unless the
      survey is feedback on a call or form complaint: it followed that call or form (its
      ExternalReference names it), or, when it names nothing (anonymous distribution), the same customer
      opened a complaint of the same category in the var survey_feedback_window_hours before. Feedback
      is not a new complaint: it tells what would satisfy the customer, what would rectify it, how to
      avoid it. An anonymous survey (distribution channel anonymous: no recipient, no reference) that
      matches no complaint of its customer is a complaint once the company opens a case on it (a
      follow-up wrap-up names it): nothing in it tells a new problem from feedback on a complaint
      already counted (the complaint call it may follow is not named), so until then it is feedback
      only (fct_survey_feedback);
    - customers' social mentions and comments whose most negative sentence has a VADER compound
      <= var social_negative_threshold (-0.05, VADER's own cut-off for negative text; VADER is scored
      per sentence, see crm_warehouse.enrich.sentiment);
    - any other customer record that a follow-up wrap-up names as its case (case_ref): the company's
      case system says it is a complaint even when the text did not read as one.
    detected_at is when the evidence reached the warehouse.
    Incremental by customer: a run recomputes the complaints of the customers its changes reach, from the records
    reached and those customers' complaints and surveys (macros/incremental/complaint_changes.sql); its pre-hook
    keeps their rows of each input in a temporary table (int_complaint_candidates_<input>). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_nestloop = off",
            "set local jit = off",
            "{{ int_complaint_candidates_changes() }}"],
        post_hook=[
            "create index if not exists int_complaint_candidates_unioned_complaint_id on {{ this }} (complaint_id)",
            "create index if not exists int_complaint_candidates_unioned_customer_id on {{ this }} (customer_id)",
            "analyze {{ this }}"
        ]
    )
}}
{%- set incremental = identity_incremental() %}
with

interactions as not materialized (

    {% if incremental %}
    select * from int_complaint_candidates_interactions
    {% else %}
    select * from {{ ref('int_interactions_unioned') }}
    {% endif %}

),

dispositions as not materialized (

    {% if incremental %}
    select * from int_complaint_candidates_dispositions
    {% else %}
    select * from {{ ref('int_dispositions_unioned') }}
    {% endif %}

),

survey_responses as not materialized (

    {% if incremental %}
    select * from int_complaint_candidates_survey_responses
    {% else %}
    select * from {{ ref('int_survey_responses_unioned') }}
    {% endif %}

),

form_responses as not materialized (

    select * from {{ ref('stg_web_forms__responses') }}
    {% if incremental %}
    -- the view's raw key (its record ids are 'typeform:' || the key): a probe of the raw primary key
    where record_key = any(array(
        select substr(record_id, length('typeform:') + 1) from int_complaint_candidates_records
        where record_id like 'typeform:%'
    ))
    {% endif %}

),

web_forms as (

    select * from {{ ref('web_forms') }}

),

customer_ids as not materialized (

    {% if incremental %}
    select * from int_complaint_candidates_customer_ids
    {% else %}
    select * from {{ ref('int_customer_ids_assigned') }}
    {% endif %}

),

-- records the company's case system follows up (a follow-up wrap-up's case_ref names them)
case_records as (

    select distinct case_record_id as record_id
    from dispositions
    where is_case_follow_up and case_record_id is not null

),

sentiment as not materialized (

    {% if incremental %}
    select * from int_complaint_candidates_sentiment
    {% else %}
    select * from {{ ref('stg_enrich__social_sentiment') }}
    {% endif %}

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

-- the customer of each call or form complaint (found by record: every record of a customer is not needed)
direct_complaint_customers as (

    select
        direct_complaints.complaint_id,
        direct_complaints.problem_category,
        direct_complaints.opened_at,
        customer_ids.customer_id

    from direct_complaints
    inner join customer_ids
        on customer_ids.record_id = direct_complaints.complaint_id

),

-- surveys that name no call or form: feedback on the same customer's recent complaint of that category
feedback_by_customer as (

    select distinct on (survey_responses.record_id)
        survey_responses.record_id as survey_record_id,
        direct_complaints.complaint_id

    from survey_responses
    inner join customer_ids as survey_customer
        on survey_customer.record_id = survey_responses.record_id
    inner join direct_complaint_customers as direct_complaints
        on direct_complaints.customer_id = survey_customer.customer_id
        and direct_complaints.problem_category = coalesce(survey_responses.problem_category, 'other')
        and direct_complaints.opened_at < coalesce(survey_responses.recorded_at, survey_responses.ended_at)
        and direct_complaints.opened_at >= coalesce(survey_responses.recorded_at, survey_responses.ended_at)
            - interval '{{ var("survey_feedback_window_hours") }} hours'
    where coalesce(survey_responses.external_reference, '') = ''
    order by survey_responses.record_id, direct_complaints.opened_at desc

),

-- the first such survey of each complaint, for its feedback columns
feedback_of_complaint as (

    select distinct on (feedback_by_customer.complaint_id)
        feedback_by_customer.complaint_id,
        survey_responses.csat_score,
        survey_responses.required_to_satisfy,
        survey_responses.necessary_to_rectify,
        survey_responses.how_to_avoid

    from feedback_by_customer
    inner join survey_responses
        on survey_responses.record_id = feedback_by_customer.survey_record_id
    order by feedback_by_customer.complaint_id, survey_responses.recorded_at

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
    left join feedback_by_customer
        on feedback_by_customer.survey_record_id = survey_responses.record_id
    left join case_records
        on case_records.record_id = survey_responses.record_id
    where (survey_responses.has_reported_problem or survey_responses.csat_score <= {{ var('low_csat_max') }})
      and direct_complaints.complaint_id is null
      and feedback_by_customer.survey_record_id is null
      and (
          survey_responses.distribution_channel is distinct from 'anonymous'
          or case_records.record_id is not null
      )

),

social_complaints as (

    select
        interactions.record_id,
        interactions.channel,
        'negative_social',
        interactions.occurred_at,
        'other',
        interactions.body_text,
        interactions.extracted_at,
        sentiment.most_negative_sentence_score,
        coalesce(interactions.social_reach, 0)

    from interactions
    inner join sentiment
        on sentiment.record_id = interactions.record_id
    where interactions.channel in ('x', 'facebook', 'linkedin')
      and interactions.is_customer_record
      and sentiment.most_negative_sentence_score <= {{ var('social_negative_threshold') }}

),

detected as (

    select * from direct_complaints
    union all
    select * from survey_complaints
    union all
    select * from social_complaints

),

-- a customer record a follow-up wrap-up names as its case, not found as a complaint otherwise
followed_up_cases as (

    select distinct on (interactions.record_id)
        interactions.record_id,
        interactions.channel,
        'followed_up_case',
        interactions.occurred_at,
        coalesce(dispositions.problem_category, 'other'),
        interactions.body_text,
        dispositions.extracted_at,
        sentiment.most_negative_sentence_score,
        coalesce(interactions.social_reach, 0)

    from dispositions
    inner join interactions
        on interactions.record_id = dispositions.case_record_id
        and interactions.is_customer_record
        -- surveys named as a case are survey complaints above, unless they are another complaint's feedback
        and interactions.channel <> 'survey'
    left join sentiment
        on sentiment.record_id = interactions.record_id
    left join detected
        on detected.complaint_id = interactions.record_id
    where dispositions.is_case_follow_up
      and detected.complaint_id is null
    order by interactions.record_id, dispositions.wrapped_at, dispositions.disposition_id

),

unioned as (

    select * from detected
    union all
    select * from followed_up_cases

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
        coalesce(
            own_survey.required_to_satisfy,
            followed_by_survey.required_to_satisfy,
            feedback_of_complaint.required_to_satisfy
        ) as required_to_satisfy,
        coalesce(
            own_survey.necessary_to_rectify,
            followed_by_survey.necessary_to_rectify,
            feedback_of_complaint.necessary_to_rectify
        ) as necessary_to_rectify,
        coalesce(
            own_survey.how_to_avoid,
            followed_by_survey.how_to_avoid,
            feedback_of_complaint.how_to_avoid
        ) as how_to_avoid,
        coalesce(
            own_survey.csat_score,
            followed_by_survey.csat_score,
            feedback_of_complaint.csat_score
        ) as csat_score,
        deduplicated.sentiment_score,
        deduplicated.social_reach,
        deduplicated.detected_at,
        customer_ids.customer_id

    from deduplicated
    left join survey_responses as own_survey
        on own_survey.record_id = deduplicated.complaint_id
    left join followed_by_survey
        on followed_by_survey.followed_record_id = deduplicated.complaint_id
    left join feedback_of_complaint
        on feedback_of_complaint.complaint_id = deduplicated.complaint_id
    left join customer_ids
        on customer_ids.record_id = deduplicated.complaint_id

)

select * from final
