with

source as (

    select * from {{ raw_source('web_forms', 'web_forms__responses') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'typeform:' || (payload->>'token') as record_id,
        payload->>'token' as response_token,
        source_object as form_id,
        {{ try_timestamptz("payload->>'landed_at'") }} as landed_at,
        -- partial responses carry no submitted_at (or Typeform's zero date)
        case
            when {{ try_timestamptz("payload->>'submitted_at'") }} > '1970-01-02'::timestamptz
                then {{ try_timestamptz("payload->>'submitted_at'") }}
        end as submitted_at,
        coalesce(
            payload->>'response_type' = 'completed',
            {{ try_timestamptz("payload->>'submitted_at'") }} > '1970-01-02'::timestamptz,
            false
        ) as is_completed,
        {{ clean_text("payload->'hidden'->>'customer_ref'") }} as customer_ref,
        {{ clean_text(typeform_answer('full_name', "t.a->>'text'")) }} as full_name,
        {{ clean_text(typeform_answer('email', "t.a->>'email'", 'email')) }} as email_raw,
        {{ canonical_email(typeform_answer('email', "t.a->>'email'", 'email')) }} as email,
        {{ clean_text(typeform_answer('phone', "coalesce(t.a->>'phone_number', t.a->>'text')", 'phone_number')) }}
            as phone_raw,
        {{ clean_text(typeform_answer('message', "t.a->>'text'")) }} as message,
        lower({{ clean_text(typeform_answer('category', "t.a->'choice'->>'label'")) }}) as problem_category,
        {{ clean_text(typeform_answer('order_number', "t.a->>'text'")) }} as order_number,
        {{ social_handle(typeform_answer('social_handle', "t.a->>'text'")) }} as social_handle,
        {{ try_bool(typeform_answer('wants_callback', "t.a->>'boolean'")) }} as wants_callback,
        {{ try_int(typeform_answer('satisfaction', "t.a->>'number'")) }} as satisfaction_score,
        {{ try_numeric("payload->'calculated'->>'score'") }} as calculated_score,
        payload->'metadata'->>'platform' as platform,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
