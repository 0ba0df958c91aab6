with

source as (

    select * from {{ raw_source('sftp_survey_vendor', 'sftp_survey_vendor__responses') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'qualtrics:' || btrim(payload->>'ResponseId') as record_id,
        btrim(payload->>'ResponseId') as response_id,
        source_object as survey_feed,
        {{ qualtrics_response_columns('csv') }},
        source_uri as source_file,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
