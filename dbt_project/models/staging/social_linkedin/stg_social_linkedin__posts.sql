with

source as (

    select * from {{ raw_source('social_linkedin', 'social_linkedin__posts') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        record_key as post_urn,
        payload->>'author' as author_urn,
        coalesce(payload->>'commentary', payload->'commentary'->>'text') as commentary,
        coalesce(
            {{ epoch_ms_to_timestamptz("payload->>'publishedAt'") }},
            {{ epoch_ms_to_timestamptz("payload->>'createdAt'") }},
            {{ epoch_ms_to_timestamptz("payload->'created'->>'time'") }}
        ) as published_at,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
