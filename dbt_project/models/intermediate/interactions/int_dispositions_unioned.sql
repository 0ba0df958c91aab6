{{ config(
    materialized='incremental',
    unique_key='disposition_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['disposition_id']}],
    pre_hook="{{ int_dispositions_changes() }}",
    post_hook=[
        "{{ extracted_at_index() }}",
        "create index if not exists int_dispositions_unioned_call_record_id on {{ this }} (call_record_id)"
        " where call_record_id is not null",
        "create index if not exists int_dispositions_unioned_case_record_id on {{ this }} (case_record_id)"
        " where case_record_id is not null",
        "analyze {{ this }}"
    ]
) }}
-- depends_on: {{ ref('stg_landing__arrivals') }}
{#- Both wrap-up feeds (phone system API and the call center's SFTP CSV) in one shape, with the
    record each case is about resolved to a record id (CONTRACTS section 4).
    Incremental (macros/incremental): a run rewrites the dispositions with a raw row since the last run. #}
with

phone_system as (

    select * from {{ ref('stg_phone_system__dispositions') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_dispositions_changed') }}
    {% endif %}

),

call_center as (

    select * from {{ ref('stg_sftp_call_center__dispositions') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_dispositions_changed') }}
    {% endif %}

),

disposition_categories as (

    select * from {{ ref('disposition_categories') }}

),

unioned as (

    select
        disposition_id, 'phone_system' as feed, 1 as feed_priority, call_record_id, call_sid, agent_id,
        wrapped_at, disposition_code, problem_category, case_ref, case_status, notes, extracted_at
    from phone_system

    union all

    select
        disposition_id, 'call_center' as feed, 2 as feed_priority, call_record_id, call_sid, agent_id,
        wrapped_at, disposition_code, problem_category, case_ref, case_status, notes, extracted_at
    from call_center

),

deduplicated as (

    select distinct on (disposition_id) *
    from unioned
    where disposition_id is not null
    order by disposition_id, feed_priority

),

resolved as (

    select
        deduplicated.disposition_id,
        deduplicated.feed,
        deduplicated.call_record_id,
        deduplicated.agent_id,
        deduplicated.wrapped_at,
        deduplicated.disposition_code,
        coalesce(deduplicated.problem_category, disposition_categories.default_category) as problem_category,
        deduplicated.case_ref,
        -- "typeform:<token>", "qualtrics:<id>", "x:<id>", "facebook:<id>", "linkedin:<urn>" are record ids;
        -- a bare id is a call: a Twilio sid (CA + 32 hex) or else a call-center call id
        case
            when deduplicated.case_ref is null then null
            when deduplicated.case_ref ~ '^(typeform|qualtrics|x|facebook|linkedin):' then deduplicated.case_ref
            when deduplicated.case_ref ~ '^CA[0-9a-fA-F]{32}$' then 'twilio:' || deduplicated.case_ref
            else 'call_center:' || deduplicated.case_ref
        end as case_record_id,
        deduplicated.case_status,
        deduplicated.notes,
        coalesce(disposition_categories.is_complaint, false) as is_complaint,
        coalesce(disposition_categories.is_case_follow_up, false) as is_case_follow_up,
        coalesce(disposition_categories.is_cancellation, false) as is_cancellation,
        deduplicated.extracted_at

    from deduplicated
    left join disposition_categories
        on disposition_categories.disposition_code = deduplicated.disposition_code

)

select * from resolved
