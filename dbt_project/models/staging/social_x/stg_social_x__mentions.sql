with

source as (

    select * from {{ raw_source('social_x', 'social_x__mentions') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'x:' || (payload->>'id') as record_id,
        payload->>'id' as tweet_id,
        payload->>'author_id' as author_user_id,
        source_object as company_user_id,
        coalesce(payload->>'author_id' = source_object, false) as is_company_post,
        payload->>'text' as tweet_text,
        {{ try_timestamptz("payload->>'created_at'") }} as created_at,
        payload->>'conversation_id' as conversation_id,
        payload->>'in_reply_to_user_id' as in_reply_to_user_id,
        (
            select r->>'id'
            from jsonb_array_elements(
                case when jsonb_typeof(payload->'referenced_tweets') = 'array'
                    then payload->'referenced_tweets' else '[]'::jsonb end
            ) as r
            where r->>'type' = 'replied_to'
            limit 1
        ) as replied_to_tweet_id,
        payload->>'lang' as language,
        coalesce({{ try_int("payload->'public_metrics'->>'retweet_count'") }}, 0) as retweet_count,
        coalesce({{ try_int("payload->'public_metrics'->>'reply_count'") }}, 0) as reply_count,
        coalesce({{ try_int("payload->'public_metrics'->>'like_count'") }}, 0) as like_count,
        coalesce({{ try_int("payload->'public_metrics'->>'quote_count'") }}, 0) as quote_count,
        {{ try_int("payload->'public_metrics'->>'impression_count'") }} as impression_count,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
