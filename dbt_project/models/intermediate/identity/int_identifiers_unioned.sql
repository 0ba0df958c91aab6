{#- Every identifier of every customer record. Strong identifiers (phone in E.164, canonical email,
    X user id and handle, Facebook user id, LinkedIn member URN, the website's customer_ref) can link
    records; names are weak: they only feed the guard against shared identifiers. Phone numbers that
    stand for nobody (var identity_ignored_phones: Twilio's anonymous-caller numbers) are left out. -#}
with

interactions as (

    select * from {{ ref('int_interactions_unioned') }}
    where is_customer_record

),

phone_numbers as (

    select * from {{ ref('stg_enrich__phone_numbers') }}

),

identifiers as (

    select interactions.record_id, 'phone' as identifier_type, phone_numbers.phone_e164 as identifier_value
    from interactions
    inner join phone_numbers
        on phone_numbers.raw_phone = interactions.phone_raw
    where phone_numbers.is_valid_phone
      and phone_numbers.phone_e164 not in ('{{ var("identity_ignored_phones") | join("', '") }}')

    union all

    -- a national number that several countries could own: every reading (see enrich.normalize_phones)
    select interactions.record_id, 'phone', candidate.e164
    from interactions
    inner join phone_numbers
        on phone_numbers.raw_phone = interactions.phone_raw
    cross join lateral unnest(phone_numbers.phone_candidates) as candidate(e164)
    where not phone_numbers.is_valid_phone

    union all

    select record_id, 'email', email
    from interactions

    union all

    select record_id, 'x_handle', social_handle
    from interactions

    union all

    select record_id, 'x_user_id', x_user_id
    from interactions

    union all

    select record_id, 'facebook_user_id', facebook_user_id
    from interactions

    union all

    select record_id, 'linkedin_member_urn', linkedin_member_urn
    from interactions

    union all

    select record_id, 'customer_ref', customer_ref
    from interactions

    union all

    select record_id, 'name', intermediate.crm_name_key(person_name)
    from interactions

),

final as (

    select distinct
        record_id,
        identifier_type,
        identifier_value,
        identifier_type <> 'name' as is_strong

    from identifiers
    where identifier_value is not null

)

select * from final
