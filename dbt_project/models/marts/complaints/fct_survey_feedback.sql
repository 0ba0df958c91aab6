{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['customer_id']}],
        pre_hook=["set local jit = off", "{{ fct_survey_feedback_changes() }}"],
        post_hook=[
            "create unique index if not exists fct_survey_feedback_survey_response_id on {{ this }}"
            " (survey_response_id)",
            "create index if not exists fct_survey_feedback_followed_interaction_id on {{ this }}"
            " (followed_interaction_id)",
            "analyze {{ this }}"
        ]
    )
}}
{%- set incremental = identity_incremental() %}
{#- Incremental: a run rewrites the responses int_survey_responses_unioned rewrote, those whose customer changed
    (merge or split), and those whose followed touchpoint may have changed (it arrived or changed after the
    survey); responses no longer in int_survey_responses_unioned are deleted (macro fct_survey_feedback_changes
    in macros/incremental/fact_changes.sql). -#}
with

survey_responses as (

    select * from {{ ref('int_survey_responses_unioned') }}
    {% if incremental %}
    -- a semi-join: the table has no index on record_id, and a sequential scan compares `= any(array(...))`
    -- with each row one element at a time (26 s for a day of a million interactions)
    where record_id in (select record_id from fct_survey_feedback_touched)
    {% endif %}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}
    {% if incremental %}
    -- probes of the record_id index (a hash join read the whole table)
    where record_id = any(array(select record_id from fct_survey_feedback_touched))
    {% endif %}

),

interactions as (

    select * from {{ ref('int_interactions_unioned') }}

),

follows as (

    -- the touchpoints each response followed. An inner join: a response without a reference (most surveys) never
    -- enters a hash table. As the preserved side of a hash right join it would: PostgreSQL keeps those null keys,
    -- they all fall in one batch that no split can shrink, and at ten million interactions the batches multiplied
    -- until the disk was full
    select
        survey_responses.record_id as survey_record_id,
        followed.record_id,
        followed.channel

    from survey_responses
    inner join interactions as followed
        on followed.reference_key = survey_responses.external_reference
        and followed.channel in ('phone', 'call_center', 'web_form')

),

joined as (

    select
        survey_responses.record_id as survey_response_id,
        customer_ids.customer_id,
        survey_responses.survey_id,
        survey_responses.feed as delivered_by,
        survey_responses.recorded_at,
        survey_responses.is_finished,
        survey_responses.distribution_channel,
        survey_responses.csat_score,
        survey_responses.csat_score >= 4 as is_satisfied,
        survey_responses.nps_score,
        case
            when survey_responses.nps_score >= 9 then 'promoter'
            when survey_responses.nps_score >= 7 then 'passive'
            when survey_responses.nps_score >= 0 then 'detractor'
        end as nps_category,
        coalesce(survey_responses.has_reported_problem, false) as has_reported_problem,
        survey_responses.problem_category,
        survey_responses.problem_description,
        survey_responses.required_to_satisfy,
        survey_responses.necessary_to_rectify,
        survey_responses.how_to_avoid,
        followed.record_id as followed_interaction_id,
        coalesce(followed.channel, 'survey') as attributed_channel,
        greatest(survey_responses.extracted_at, customer_ids.changed_at) as updated_at

    from survey_responses
    left join customer_ids
        on customer_ids.record_id = survey_responses.record_id
    left join follows as followed
        on followed.survey_record_id = survey_responses.record_id

),

final as (

    select distinct on (survey_response_id) *
    from joined
    order by survey_response_id, followed_interaction_id

)

select * from final
