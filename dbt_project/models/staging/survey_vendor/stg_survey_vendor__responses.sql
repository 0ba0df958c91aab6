with

source as (

    select * from {{ raw_source('survey_vendor', 'survey_vendor__responses') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'qualtrics:' || (payload->>'responseId') as record_id,
        payload->>'responseId' as response_id,
        source_object as survey_id,
        {{ qualtrics_response_columns('json') }},
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
