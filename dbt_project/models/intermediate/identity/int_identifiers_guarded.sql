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

profiles as (

    select * from identifiers
    where identifier_type in ('name', 'email', 'customer_ref')
       or (identifier_type = 'phone' and is_exact)

),

neighbours as (

    select record_id, linked_record_id as neighbour_record_id from links
    union
    select linked_record_id, record_id from links

),

reached as (

    -- the records an identifier speaks for: its own and their direct links
    select identifier_type, identifier_value, record_id as reached_record_id
    from strong

    union

    select strong.identifier_type, strong.identifier_value, neighbours.neighbour_record_id
    from strong
    inner join neighbours
        on neighbours.record_id = strong.record_id

),

reached_profiles as (

    select distinct
        reached.identifier_type,
        reached.identifier_value,
        profiles.identifier_type as profile_type,
        profiles.identifier_value as profile_value

    from reached
    inner join profiles
        on profiles.record_id = reached.reached_record_id
    where profiles.identifier_type <> reached.identifier_type

),

names as (

    select * from reached_profiles
    where profile_type = 'name'

),

people_by_name as (

    -- name keys that no other key of the same identifier contains
    select names.identifier_type, names.identifier_value, count(*) as names_count
    from names
    where not exists (
        select 1
        from names as longer
        where longer.identifier_type = names.identifier_type
          and longer.identifier_value = names.identifier_value
          and longer.profile_value <> names.profile_value
          and string_to_array(names.profile_value, ' ') <@ string_to_array(longer.profile_value, ' ')
    )
    group by 1, 2

),

contacts as (

    select
        identifier_type,
        identifier_value,
        count(*) filter (where profile_type = 'email') as emails_count,
        count(*) filter (where profile_type = 'phone') as phones_count,
        count(*) filter (where profile_type = 'customer_ref') as customer_refs_count
    from reached_profiles
    where profile_type <> 'name'
    group by 1, 2

),

counted as (

    select
        strong.identifier_type,
        strong.identifier_value,
        count(*) as records_count,
        coalesce(max(people_by_name.names_count), 0) as names_count,
        coalesce(max(contacts.emails_count), 0) as emails_count,
        coalesce(max(contacts.phones_count), 0) as phones_count,
        coalesce(max(contacts.customer_refs_count), 0) as customer_refs_count

    from strong
    left join people_by_name
        on people_by_name.identifier_type = strong.identifier_type
        and people_by_name.identifier_value = strong.identifier_value
    left join contacts
        on contacts.identifier_type = strong.identifier_type
        and contacts.identifier_value = strong.identifier_value
    group by 1, 2

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
