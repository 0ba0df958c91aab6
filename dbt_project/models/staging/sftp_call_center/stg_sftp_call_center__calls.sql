with

source as (

    select * from {{ raw_source('sftp_call_center', 'sftp_call_center__calls') }}

),

deduplicated as (

    {{ latest_version('source') }}

),

renamed as (

    select
        'call_center:' || btrim(payload->>'call_id') as record_id,
        btrim(payload->>'call_id') as call_id,
        {{ try_timestamptz("payload->>'started_at'") }} as started_at,
        {{ try_timestamptz("payload->>'ended_at'") }} as ended_at,
        case when lower(btrim(payload->>'direction')) = 'outbound' then 'outbound' else 'inbound' end as direction,
        {{ clean_text("payload->>'caller_number'") }} as caller_number_raw,
        {{ clean_text("payload->>'dialed_number'") }} as dialed_number_raw,
        case
            when lower(btrim(payload->>'direction')) = 'outbound' then {{ clean_text("payload->>'dialed_number'") }}
            else {{ clean_text("payload->>'caller_number'") }}
        end as customer_phone_raw,
        {{ clean_text("payload->>'agent_id'") }} as agent_id,
        {{ try_int("payload->>'duration_seconds'") }} as duration_seconds,
        {{ try_int("payload->>'queue_seconds'") }} as queue_seconds,
        lower({{ clean_text("payload->>'status'") }}) as call_status,
        source_uri as source_file,
        record_key,
        extracted_at,
        batch_id

    from deduplicated

)

select * from renamed
