with

source as (

    select * from {{ raw_source('social_x', 'social_x__users') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        payload->>'id' as user_id,
        payload->>'username' as username,
        {{ social_handle("payload->>'username'") }} as social_handle,
        {{ clean_text("payload->>'name'") }} as display_name,
        coalesce({{ try_int("payload->'public_metrics'->>'followers_count'") }}, 0) as followers_count,
        coalesce({{ try_bool("payload->>'verified'") }}, false) as is_verified,
        payload->>'description' as profile_description,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
