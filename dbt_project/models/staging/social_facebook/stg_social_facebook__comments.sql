with

source as (

    select * from {{ raw_source('social_facebook', 'social_facebook__comments') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'facebook:' || (payload->>'id') as record_id,
        payload->>'id' as comment_id,
        coalesce(source_object, split_part(payload->>'id', '_', 1)) as post_id,
        split_part(source_object, '_', 1) as page_id,
        -- `from` is missing when the person's privacy settings hide it
        payload->'from'->>'id' as author_id,
        {{ clean_text("payload->'from'->>'name'") }} as author_name,
        coalesce(payload->'from'->>'id' = split_part(source_object, '_', 1), false) as is_company_reply,
        payload->>'message' as message,
        {{ try_timestamptz("payload->>'created_time'") }} as created_at,
        coalesce({{ try_int("payload->>'like_count'") }}, 0) as like_count,
        coalesce({{ try_int("payload->>'comment_count'") }}, 0) as reply_count,
        payload->'parent'->>'id' as parent_comment_id,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
