{#- What arrived in the raw landings, without the payloads: one row per raw row (every version of every
    record). The incremental intermediate models read it to find the natural keys that have a row newer
    than their high-water mark (macro incremental_changed_keys); a filter on raw_table keeps only that
    landing's branch of the union. -#}
with

source as (

    select 'phone_system__calls' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('phone_system', 'phone_system__calls') }}

    union all

    select 'phone_system__dispositions' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('phone_system', 'phone_system__dispositions') }}

    union all

    select 'sftp_call_center__calls' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('sftp_call_center', 'sftp_call_center__calls') }}

    union all

    select 'sftp_call_center__dispositions' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('sftp_call_center', 'sftp_call_center__dispositions') }}

    union all

    select 'survey_vendor__responses' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('survey_vendor', 'survey_vendor__responses') }}

    union all

    select 'sftp_survey_vendor__responses' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('sftp_survey_vendor', 'sftp_survey_vendor__responses') }}

    union all

    select 'web_forms__responses' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('web_forms', 'web_forms__responses') }}

    union all

    select 'social_x__mentions' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_x', 'social_x__mentions') }}

    union all

    select 'social_x__users' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_x', 'social_x__users') }}

    union all

    select 'social_facebook__posts' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_facebook', 'social_facebook__posts') }}

    union all

    select 'social_facebook__comments' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_facebook', 'social_facebook__comments') }}

    union all

    select 'social_linkedin__posts' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_linkedin', 'social_linkedin__posts') }}

    union all

    select 'social_linkedin__comments' as raw_table, record_key, batch_id, extracted_at
    from {{ raw_source('social_linkedin', 'social_linkedin__comments') }}

),

renamed as (

    select
        raw_table,
        record_key,
        batch_id,
        extracted_at

    from source

)

select * from renamed
