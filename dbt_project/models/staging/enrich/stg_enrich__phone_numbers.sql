with

source as (

    select * from {{ source('enrich', 'phone_numbers_normalized') }}

),

renamed as (

    select
        raw_phone,
        e164 as phone_e164,
        is_valid as is_valid_phone,
        region as phone_region,
        candidates as phone_candidates,
        normalized_at

    from source

)

select * from renamed
