{{ config(
    materialized='incremental',
    unique_key='response_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="{{ int_survey_responses_changes() }}",
    post_hook=[
        "{{ extracted_at_index() }}",
        "create index if not exists int_survey_responses_unioned_record_id on {{ this }} (record_id)",
        "create index if not exists int_survey_responses_unioned_external_reference on {{ this }} (external_reference)"
        " where external_reference is not null",
        "analyze {{ this }}"
    ]
) }}
-- depends_on: {{ ref('stg_landing__arrivals') }}
{#- Survey responses from the Qualtrics API export and from the vendor's SFTP CSV drops; a response
    delivered both ways is kept once (the API version wins).
    Incremental (macros/incremental): a run rewrites the responses with a raw row since the last run. #}
with

api_responses as (

    select * from {{ ref('stg_survey_vendor__responses') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_survey_responses_changed') }}
    {% endif %}

),

file_responses as (

    select * from {{ ref('stg_sftp_survey_vendor__responses') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_survey_responses_changed') }}
    {% endif %}

),

unioned as (

    select
        record_id, response_id, survey_id, 'api' as feed, 1 as feed_priority,
        started_at, ended_at, recorded_at, response_type_code, progress_percent, duration_seconds,
        is_finished, email, first_name, last_name, external_reference, distribution_channel,
        user_language, csat_score, nps_score, has_reported_problem, problem_description,
        required_to_satisfy, necessary_to_rectify, how_to_avoid, phone_raw, social_handle,
        problem_category, extracted_at
    from api_responses

    union all

    select
        record_id, response_id, survey_feed as survey_id, 'sftp' as feed, 2 as feed_priority,
        started_at, ended_at, recorded_at, response_type_code, progress_percent, duration_seconds,
        is_finished, email, first_name, last_name, external_reference, distribution_channel,
        user_language, csat_score, nps_score, has_reported_problem, problem_description,
        required_to_satisfy, necessary_to_rectify, how_to_avoid, phone_raw, social_handle,
        problem_category, extracted_at
    from file_responses

),

deduplicated as (

    select distinct on (response_id) *
    from unioned
    where response_id is not null and response_id <> ''
    order by response_id, feed_priority, extracted_at desc

)

select * from deduplicated
