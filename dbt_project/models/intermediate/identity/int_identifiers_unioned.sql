{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['record_id']}, {'columns': ['identifier_value']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local jit = off",
        "{{ int_identifiers_changes() }}"],
    post_hook=[
        "{{ extracted_at_index() }}",
        "create index if not exists int_identifiers_unioned_phone_normalized_at on {{ this }} (phone_normalized_at)"
        " where phone_normalized_at is not null",
        "analyze {{ this }}",
        "{{ int_identifiers_unioned_written() }}"
    ]
) }}
-- depends_on: {{ ref('stg_landing__arrivals') }}
{#- Every identifier of every customer record. Strong identifiers (phone in E.164, canonical email,
    X user id and handle, Facebook user id, LinkedIn member URN, the website's customer_ref) can link
    records; names are weak: they only feed the guard against shared identifiers. is_exact is false for
    the possible readings of a phone number libphonenumber could not pin down (a national number several
    countries could own). Phone numbers that stand for nobody (var identity_ignored_phones: Twilio's
    anonymous-caller numbers) are left out.
    Incremental (macros/incremental): a run rewrites the identifiers of the records with a raw row since the
    last run, of X mentions whose user changed, and of records whose phone number was normalised since. #}
with

interactions as (

    -- only the columns used: the CTE is read nine times and materialised once
    select record_id, phone_raw, email, social_handle, x_user_id, facebook_user_id, linkedin_member_urn,
        customer_ref, person_name, extracted_at
    from {{ ref('int_interactions_unioned') }}
    where is_customer_record
    {% if is_incremental() %}
      and record_id in (select record_id from int_identifiers_changed)
    {% endif %}

),

phone_numbers as (

    select * from {{ ref('stg_enrich__phone_numbers') }}

),

identifiers_without_phones as (

    -- each identifier column becomes rows (one filtered scan of the materialized records per column: cheaper
    -- than a values list joined to every record)
    select record_id, 'email' as identifier_type, email as identifier_value, true as is_exact, extracted_at,
        null::timestamptz as phone_normalized_at
    from interactions
    where email is not null
    union all
    select record_id, 'x_handle', social_handle, true, extracted_at, null
    from interactions
    where social_handle is not null
    union all
    select record_id, 'x_user_id', x_user_id, true, extracted_at, null
    from interactions
    where x_user_id is not null
    union all
    select record_id, 'facebook_user_id', facebook_user_id, true, extracted_at, null
    from interactions
    where facebook_user_id is not null
    union all
    select record_id, 'linkedin_member_urn', linkedin_member_urn, true, extracted_at, null
    from interactions
    where linkedin_member_urn is not null
    union all
    select record_id, 'customer_ref', customer_ref, true, extracted_at, null
    from interactions
    where customer_ref is not null

),

phones as (

    -- a valid number: its E.164; a national number several countries could own, or a number in a range
    -- libphonenumber does not know: every reading (crm_warehouse.identity.phones.normalize_phone), not exact
    select interactions.record_id, 'phone' as identifier_type, reading.e164 as identifier_value,
        phone_numbers.is_valid_phone as is_exact, interactions.extracted_at,
        phone_numbers.normalized_at as phone_normalized_at
    from interactions
    inner join phone_numbers
        on phone_numbers.raw_phone = interactions.phone_raw
    cross join lateral unnest(
        case when phone_numbers.is_valid_phone then array[phone_numbers.phone_e164]
        else phone_numbers.phone_candidates end
    ) as reading (e164)
    where reading.e164 not in ('{{ var("identity_ignored_phones") | join("', '") }}')

),

name_keys as materialized (

    -- names repeat: the key is computed once per distinct spelling (materialized: inlined, the planner
    -- would compute it on every record, twice)
    select person_name, intermediate.crm_name_key(person_name) as name_key
    from (select distinct person_name from interactions where person_name is not null) as spellings

),

names as (

    select interactions.record_id, 'name' as identifier_type, name_keys.name_key as identifier_value,
        true as is_exact, interactions.extracted_at, null::timestamptz as phone_normalized_at
    from interactions
    inner join name_keys
        on name_keys.person_name = interactions.person_name

),

identifiers as (

    select * from identifiers_without_phones
    union all
    select * from phones
    union all
    select * from names

),

final as (

    -- no duplicates to remove: one row per column, and the readings of a number are distinct
    select
        record_id,
        identifier_type,
        identifier_value,
        identifier_type <> 'name' as is_strong,
        is_exact,
        extracted_at,
        phone_normalized_at

    from identifiers
    where identifier_value is not null

)

select * from final
