with

source as (

    select * from {{ raw_source('social_linkedin', 'social_linkedin__comments') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'linkedin:' || record_key as record_id,
        record_key as comment_urn,
        payload->>'id' as comment_id,
        coalesce(payload->>'object', source_object) as post_urn,
        payload->>'actor' as actor_urn,
        coalesce(payload->>'actor' like 'urn:li:organization:%', false) as is_company_reply,
        payload->'message'->>'text' as message,
        {{ epoch_ms_to_timestamptz("payload->'created'->>'time'") }} as created_at,
        {{ epoch_ms_to_timestamptz("payload->'lastModified'->>'time'") }} as last_modified_at,
        payload->>'parentComment' as parent_comment_urn,
        coalesce(
            {{ try_int("payload->'likesSummary'->>'totalLikes'") }},
            {{ try_int("payload->'likesSummary'->>'aggregatedTotalLikes'") }},
            0
        ) as like_count,
        coalesce({{ try_int("payload->'commentsSummary'->>'aggregatedTotalComments'") }}, 0) as reply_count,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
