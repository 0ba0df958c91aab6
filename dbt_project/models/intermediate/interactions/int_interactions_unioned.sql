{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['record_id']}],
    pre_hook="{{ int_interactions_changes() }}",
    post_hook=[
        "{{ extracted_at_index() }}",
        "create index if not exists int_interactions_unioned_parent_record_id on {{ this }} (parent_record_id)"
        " where parent_record_id is not null",
        "create index if not exists int_interactions_unioned_x_user_id on {{ this }} (x_user_id)"
        " where x_user_id is not null",
        "create index if not exists int_interactions_unioned_phone_raw on {{ this }} (phone_raw)"
        " where phone_raw is not null",
        "create index if not exists int_interactions_unioned_reference_key on {{ this }} (reference_key)"
        " where reference_key is not null",
        "analyze {{ this }}",
        "{{ int_interactions_written() }}"
    ]
) }}
-- depends_on: {{ ref('stg_landing__arrivals') }}
{#- Every touchpoint of every channel in one shape: who (the identifiers the record carries), when,
    where, and which direction. Customer records take part in identity resolution; the company's own
    social replies do not (they point at the record they answer: parent_record_id).
    Incremental (macros/incremental): a run rewrites the records with a raw row since the last run, the X
    mentions of users whose profile changed, and the social records whose sentiment score changed. The indexes on
    x_user_id and phone_raw serve the identity chain's change detection (X users whose profile changed, phone
    numbers normalised again: macros/incremental/intermediate_changes.sql), the one on reference_key
    int_record_links_unioned (the touchpoints a changed survey followed). #}
with

twilio_calls as (

    select * from {{ ref('stg_phone_system__calls') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'phone_system__calls') }}
    {% endif %}

),

call_center_calls as (

    select * from {{ ref('stg_sftp_call_center__calls') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'sftp_call_center__calls') }}
    {% endif %}

),

survey_responses as (

    select * from {{ ref('int_survey_responses_unioned') }}
    {% if is_incremental() %}
    where record_id in (select record_id from int_interactions_changed)
    {% endif %}

),

form_responses as (

    select * from {{ ref('stg_web_forms__responses') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'web_forms__responses') }}
    {% endif %}

),

x_mentions as (

    select * from {{ ref('stg_social_x__mentions') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'social_x__mentions') }}
    {% endif %}

),

x_users as (

    select * from {{ ref('stg_social_x__users') }}
    {% if is_incremental() %}
    -- the authors of the mentions read
    where record_key = any(array(select author_user_id from x_mentions))
    {% endif %}

),

facebook_comments as (

    select * from {{ ref('stg_social_facebook__comments') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'social_facebook__comments') }}
    {% endif %}

),

linkedin_comments as (

    select * from {{ ref('stg_social_linkedin__comments') }}
    {% if is_incremental() %}
    where {{ is_changed_key('int_interactions_changed', 'social_linkedin__comments') }}
    {% endif %}

),

sentiment as (

    select * from {{ ref('stg_enrich__social_sentiment') }}

),

calls as (

    -- child legs (outbound-dial to agents or forwards) would double count and carry agents' numbers
    select
        record_id, 'twilio' as source_system, 'phone' as channel, direction, 'call' as interaction_type,
        coalesce(started_at, created_at) as occurred_at, call_sid as reference_key, call_sid as case_ref,
        true as is_customer_record, null::text as parent_record_id,
        customer_phone_raw as phone_raw, null::text as email, null::text as social_handle,
        null::text as x_user_id, null::text as facebook_user_id, null::text as linkedin_member_urn,
        null::text as customer_ref,
        case when direction = 'inbound' then caller_name end as person_name,
        null::text as body_text, null::integer as social_reach, duration_seconds, extracted_at
    from twilio_calls
    where parent_call_sid is null

    union all

    select
        record_id, 'call_center', 'call_center', direction, 'call',
        started_at, call_id, call_id,
        true, null,
        customer_phone_raw, null, null,
        null, null, null,
        null,
        null,
        null, null, duration_seconds, extracted_at
    from call_center_calls

),

surveys as (

    select
        record_id, 'qualtrics' as source_system, 'survey' as channel, 'inbound' as direction,
        'survey_response' as interaction_type,
        coalesce(recorded_at, ended_at, started_at) as occurred_at, response_id as reference_key,
        record_id as case_ref,
        true as is_customer_record, null::text as parent_record_id,
        phone_raw, email, social_handle,
        null::text as x_user_id, null::text as facebook_user_id, null::text as linkedin_member_urn,
        null::text as customer_ref,
        nullif(concat_ws(' ', first_name, last_name), '') as person_name,
        problem_description as body_text, null::integer as social_reach, duration_seconds, extracted_at
    from survey_responses

),

forms as (

    select
        record_id, 'typeform', 'web_form', 'inbound', 'form_response',
        coalesce(submitted_at, landed_at), response_token, record_id,
        true, null,
        phone_raw, email, social_handle,
        null, null, null,
        customer_ref,
        full_name,
        message, null::integer, null::integer, extracted_at
    from form_responses

),

social as (

    select
        x_mentions.record_id, 'x', 'x',
        case when x_mentions.is_company_post then 'outbound' else 'inbound' end,
        case when x_mentions.is_company_post then 'social_reply' else 'social_mention' end,
        x_mentions.created_at, x_mentions.tweet_id, x_mentions.record_id,
        not x_mentions.is_company_post,
        case when x_mentions.is_company_post then 'x:' || x_mentions.replied_to_tweet_id end,
        null, null, x_users.social_handle,
        x_mentions.author_user_id, null, null,
        null,
        x_users.display_name,
        x_mentions.tweet_text,
        coalesce(x_users.followers_count, 0) + x_mentions.retweet_count + x_mentions.quote_count
            + x_mentions.reply_count + x_mentions.like_count,
        null::integer, x_mentions.extracted_at
    from x_mentions
    left join x_users
        on x_users.user_id = x_mentions.author_user_id

    union all

    select
        record_id, 'facebook', 'facebook',
        case when is_company_reply then 'outbound' else 'inbound' end,
        case when is_company_reply then 'social_reply' else 'social_comment' end,
        created_at, comment_id, record_id,
        not is_company_reply,
        case when is_company_reply then 'facebook:' || parent_comment_id end,
        null, null, null,
        null, author_id, null,
        null,
        author_name,
        message,
        like_count + reply_count,
        null::integer, extracted_at
    from facebook_comments

    union all

    select
        record_id, 'linkedin', 'linkedin',
        case when is_company_reply then 'outbound' else 'inbound' end,
        case when is_company_reply then 'social_reply' else 'social_comment' end,
        created_at, comment_urn, record_id,
        not is_company_reply,
        case when is_company_reply then 'linkedin:' || parent_comment_urn end,
        null, null, null,
        null, null, actor_urn,
        null,
        null,
        message,
        like_count + reply_count,
        null::integer, extracted_at
    from linkedin_comments

),

unioned as (

    select * from calls
    union all
    select * from surveys
    union all
    select * from forms
    union all
    select * from social

),

final as (

    select
        unioned.*,
        sentiment.sentiment_score

    from unioned
    left join sentiment
        on sentiment.record_id = unioned.record_id
    where unioned.record_id is not null

)

select * from final
