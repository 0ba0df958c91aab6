with

source as (

    select * from {{ raw_source('phone_system', 'phone_system__dispositions') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        payload->>'disposition_id' as disposition_id,
        'twilio:' || (payload->>'call_sid') as call_record_id,
        payload->>'call_sid' as call_sid,
        {{ clean_text("payload->>'agent_id'") }} as agent_id,
        {{ try_timestamptz("payload->>'wrapped_at'") }} as wrapped_at,
        lower({{ clean_text("payload->>'code'") }}) as disposition_code,
        lower({{ clean_text("payload->>'category'") }}) as problem_category,
        {{ clean_text("payload->>'case_ref'") }} as case_ref,
        lower({{ clean_text("payload->>'case_status'") }}) as case_status,
        payload->>'notes' as notes,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
