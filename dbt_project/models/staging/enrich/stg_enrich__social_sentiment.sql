with

source as (

    select * from {{ source('enrich', 'social_sentiment') }}

),

renamed as (

    select
        text_id as record_id,
        channel,
        compound as sentiment_score,
        sentence_min_compound as most_negative_sentence_score,
        positive as sentiment_positive,
        neutral as sentiment_neutral,
        negative as sentiment_negative,
        scored_at

    from source

)

select * from renamed
