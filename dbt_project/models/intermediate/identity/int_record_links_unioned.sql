{{ config(
    unlogged=true,
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_sort = off",
        "set local jit = off"],
    post_hook="analyze {{ this }}"
) }}
{#- Direct links between two customer records that are known to be the same person: a follow-up or
    complaint call whose disposition names the case record it is about (case_ref), and a survey that
    followed an interaction (externalDataReference = a call sid or form token). -#}
with

interactions as (

    -- only the columns used (the CTE is read three times and materialised once)
    select record_id, reference_key, channel from {{ ref('int_interactions_unioned') }}
    where is_customer_record

),

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}

),

surveys as (

    select * from {{ ref('int_survey_responses_unioned') }}

),

case_links as (

    select
        calls.record_id,
        cases.record_id as linked_record_id,
        'disposition_case_ref' as link_type

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
        'survey_external_reference' as link_type

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
    select record_id, linked_record_id, link_type
    from links
    group by record_id, linked_record_id, link_type

)

select * from final
