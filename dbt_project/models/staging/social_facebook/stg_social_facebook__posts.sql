with

source as (

    select * from {{ raw_source('social_facebook', 'social_facebook__posts') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'facebook:' || (payload->>'id') as record_id,
        payload->>'id' as post_id,
        -- Graph API post ids are "<page id>_<post id>"
        coalesce(payload->'from'->>'id', split_part(payload->>'id', '_', 1)) as page_id,
        payload->>'message' as message,
        {{ try_timestamptz("payload->>'created_time'") }} as created_at,
        payload->>'permalink_url' as permalink_url,
        coalesce({{ try_int("payload->'comments'->'summary'->>'total_count'") }}, 0) as comment_count,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
