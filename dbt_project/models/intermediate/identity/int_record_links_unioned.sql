{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['record_id']}, {'columns': ['linked_record_id']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_sort = off",
        "set local jit = off", "{{ int_record_links_changes() }}"],
    post_hook=["{{ extracted_at_index() }}", "analyze {{ this }}", "{{ int_record_links_written() }}"]
) }}
-- depends_on: {{ ref('stg_landing__arrivals') }}
{#- Direct links between two customer records that are known to be the same person: a follow-up or
    complaint call whose disposition names the case record it is about (case_ref), and a survey that
    followed an interaction (externalDataReference = a call sid or form token).
    Incremental (macros/incremental): a run rewrites the links of the calls and surveys whose links can have
    changed since the last run (macro int_record_links_changes). #}
with

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}
    {% if is_incremental() %}
    -- probes of the index on call_record_id (`in (select ...)` hashed, and read, every wrap-up)
    where call_record_id = any(array(select record_id from int_record_links_changed))
    {% endif %}

),

surveys as (

    select * from {{ ref('int_survey_responses_unioned') }}
    {% if is_incremental() %}
    where record_id = any(array(select record_id from int_record_links_changed))
    {% endif %}

),

interactions as (

    -- only the columns used (the CTE is read three times and materialised once)
    {% if is_incremental() %}
    -- the records changed, the cases of their wrap-ups and the records their surveys followed: probes of the
    -- indexes on record_id and reference_key (with `or`, PostgreSQL read every touchpoint)
    select record_id, reference_key, channel, extracted_at from {{ ref('int_interactions_unioned') }}
    where is_customer_record
      and record_id = any(array(
          select record_id from int_record_links_changed
          union
          select case_record_id from dispositions where case_record_id is not null
      ))
    union
    select record_id, reference_key, channel, extracted_at from {{ ref('int_interactions_unioned') }}
    where is_customer_record
      and reference_key = any(array(select external_reference from surveys where external_reference is not null))
    {% else %}
    select record_id, reference_key, channel, extracted_at from {{ ref('int_interactions_unioned') }}
    where is_customer_record
    {% endif %}

),

case_links as (

    select
        calls.record_id,
        cases.record_id as linked_record_id,
        'disposition_case_ref' as link_type,
        greatest(dispositions.extracted_at, calls.extracted_at, cases.extracted_at) as extracted_at

    from dispositions
    inner join interactions as calls
        on calls.record_id = dispositions.call_record_id
    inner join interactions as cases
        on cases.record_id = dispositions.case_record_id
    where dispositions.case_record_id <> dispositions.call_record_id

),

survey_links as (

    select
        surveys.record_id,
        followed.record_id as linked_record_id,
        'survey_external_reference' as link_type,
        greatest(surveys.extracted_at, followed.extracted_at) as extracted_at

    from surveys
    inner join interactions as followed
        on followed.reference_key = surveys.external_reference
        and followed.channel in ('phone', 'call_center', 'web_form')

),

links as (

    select * from case_links
    union all
    select * from survey_links

),

final as (

    -- one row per link (a group by, which hashes, where union would sort the text ids)
    select record_id, linked_record_id, link_type, max(extracted_at) as extracted_at
    from links
    group by record_id, linked_record_id, link_type

)

select * from final
