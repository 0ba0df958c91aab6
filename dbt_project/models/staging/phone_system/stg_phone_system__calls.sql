with

source as (

    select * from {{ raw_source('phone_system', 'phone_system__calls') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'twilio:' || (payload->>'sid') as record_id,
        payload->>'sid' as call_sid,
        payload->>'account_sid' as account_sid,
        {{ clean_text("payload->>'parent_call_sid'") }} as parent_call_sid,
        payload->>'direction' as twilio_direction,
        case when payload->>'direction' = 'inbound' then 'inbound' else 'outbound' end as direction,
        payload->>'status' as call_status,
        {{ clean_text("payload->>'from'") }} as from_number_raw,
        {{ clean_text("payload->>'to'") }} as to_number_raw,
        case
            when payload->>'direction' = 'inbound' then {{ clean_text("payload->>'from'") }}
            else {{ clean_text("payload->>'to'") }}
        end as customer_phone_raw,
        {{ clean_text("payload->>'caller_name'") }} as caller_name,
        {{ try_timestamptz("payload->>'start_time'") }} as started_at,
        {{ try_timestamptz("payload->>'end_time'") }} as ended_at,
        {{ try_timestamptz("payload->>'date_created'") }} as created_at,
        {{ try_timestamptz("payload->>'date_updated'") }} as updated_at,
        {{ try_int("payload->>'duration'") }} as duration_seconds,
        -- Twilio's queue_time is in milliseconds
        round({{ try_numeric("payload->>'queue_time'") }} / 1000.0)::integer as queue_seconds,
        {{ try_numeric("payload->>'price'") }} as price,
        payload->>'price_unit' as price_unit,
        payload->>'answered_by' as answered_by,
        {{ clean_text("payload->>'forwarded_from'") }} as forwarded_from_raw,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
