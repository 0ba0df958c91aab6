{{ config(pre_hook="set local work_mem = '256MB'", post_hook="analyze {{ this }}") }}
{#- The guard against merging strangers. An identifier shared by people who disagree is cut, not used
    as a link: a company or call-center number that many customers typed or called from, a family
    phone or email. Per strong identifier we profile the records carrying it and the records directly
    linked to those (a survey naming the call it followed, a follow-up call naming its case): the
    people by name (name keys that are not part of a longer one: "chris" and "collins chris" are one
    person, "chris collins" and "mary collins" two) and the distinct contacts of the other kinds
    (emails, exact phone numbers, customer_refs). It is cut when
      - it is on more than var identity_max_records_per_identifier records, or
      - its records carry more than var identity_max_names_per_identifier people by name, or
      - more than var identity_max_contacts_per_identifier distinct contacts of one kind, or
      - at least two people by name and at least two contacts of one kind (two people: the names and
        contacts disagree).
    One person with two emails, or with a short and a full spelling of one name, is not cut. -#}
with

identifiers as (

    select * from {{ ref('int_identifiers_unioned') }}

),

links as (

    select * from {{ ref('int_record_links_unioned') }}

),

strong as (

    select * from identifiers
    where is_strong

),

record_profiles as (

    -- one row per record: it carries at most one name key, email, exact phone and customer_ref
    select
        record_id,
        max(identifier_value) filter (where identifier_type = 'name') as name_key,
        max(identifier_value) filter (where identifier_type = 'email') as email,
        max(identifier_value) filter (where identifier_type = 'phone' and is_exact) as phone,
        max(identifier_value) filter (where identifier_type = 'customer_ref') as customer_ref
    from identifiers
    where identifier_type in ('name', 'email', 'phone', 'customer_ref')
    group by record_id

),

neighbours as (

    select record_id, linked_record_id as neighbour_record_id from links
    union
    select linked_record_id, record_id from links

),

reached as (

    -- the records an identifier speaks for: its own and their direct links
    select identifier_type, identifier_value, record_id as reached_record_id, true as is_own
    from strong

    union all

    select strong.identifier_type, strong.identifier_value, neighbours.neighbour_record_id, false
    from strong
    inner join neighbours
        on neighbours.record_id = strong.record_id

),

profiled as (

    select
        reached.identifier_type,
        count(*) filter (where reached.is_own) as records_count,
        reached.identifier_value,
        array_agg(distinct record_profiles.name_key) filter (where record_profiles.name_key is not null)
            as name_keys,
        count(distinct record_profiles.email) filter (where reached.identifier_type <> 'email') as emails_count,
        count(distinct record_profiles.phone) filter (where reached.identifier_type <> 'phone') as phones_count,
        count(distinct record_profiles.customer_ref) filter (where reached.identifier_type <> 'customer_ref')
            as customer_refs_count

    from reached
    left join record_profiles
        on record_profiles.record_id = reached.reached_record_id
    group by reached.identifier_type, reached.identifier_value

),

counted as (

    select
        identifier_type,
        identifier_value,
        records_count,
        -- people by name: name keys that no other key of the identifier contains
        case
            when coalesce(cardinality(name_keys), 0) < 2 then coalesce(cardinality(name_keys), 0)
            else (
                select count(*)
                from unnest(name_keys) as shorter (name_key)
                where not exists (
                    select 1
                    from unnest(name_keys) as longer (name_key)
                    where longer.name_key <> shorter.name_key
                      and string_to_array(shorter.name_key, ' ') <@ string_to_array(longer.name_key, ' ')
                )
            )
        end as names_count,
        emails_count,
        phones_count,
        customer_refs_count

    from profiled

),

judged as (

    select
        *,
        greatest(emails_count, phones_count, customer_refs_count) as contacts_count,
        case
            when records_count > {{ var('identity_max_records_per_identifier') }} then 'too_many_records'
            when names_count > {{ var('identity_max_names_per_identifier') }} then 'too_many_names'
            when greatest(emails_count, phones_count, customer_refs_count)
                > {{ var('identity_max_contacts_per_identifier') }} then 'too_many_contacts'
            when names_count >= 2 and greatest(emails_count, phones_count, customer_refs_count) >= 2
                then 'names_and_contacts_disagree'
        end as cut_reason

    from counted

),

final as (

    select
        identifier_type,
        identifier_value,
        records_count,
        names_count,
        emails_count,
        phones_count,
        customer_refs_count,
        contacts_count,
        cut_reason is not null as is_cut,
        cut_reason

    from judged

)

select * from final
