{#- The guard against merging strangers. An identifier shared by people who disagree is cut, not used
    as a link: a company or call-center number that many customers typed or called from, a family
    phone or email. Per strong identifier we count the records carrying it, the distinct names on
    those records and the distinct contacts of the other kind (emails for a phone; phones for an
    email; the larger of both for the other identifiers). It is cut when
      - it is on more than var identity_max_records_per_identifier records, or
      - its records carry more than var identity_max_names_per_identifier distinct names, or
      - more than var identity_max_contacts_per_identifier distinct contacts, or
      - at least two names and at least two contacts (two people: the names and contacts disagree).
    One person with two emails, or with spellings of one name, is not cut. -#}
with

identifiers as (

    select * from {{ ref('int_identifiers_unioned') }}

),

strong as (

    select * from identifiers
    where is_strong

),

profiles as (

    select * from identifiers
    where identifier_type in ('name', 'email', 'phone')

),

counted as (

    select
        strong.identifier_type,
        strong.identifier_value,
        count(distinct strong.record_id) as records_count,
        count(distinct profiles.identifier_value) filter (where profiles.identifier_type = 'name') as names_count,
        count(distinct profiles.identifier_value) filter (
            where profiles.identifier_type = 'email' and strong.identifier_type <> 'email'
        ) as emails_count,
        count(distinct profiles.identifier_value) filter (
            where profiles.identifier_type = 'phone' and strong.identifier_type <> 'phone'
        ) as phones_count

    from strong
    left join profiles
        on profiles.record_id = strong.record_id
    group by 1, 2

),

judged as (

    select
        *,
        greatest(emails_count, phones_count) as contacts_count,
        case
            when records_count > {{ var('identity_max_records_per_identifier') }} then 'too_many_records'
            when names_count > {{ var('identity_max_names_per_identifier') }} then 'too_many_names'
            when greatest(emails_count, phones_count) > {{ var('identity_max_contacts_per_identifier') }}
                then 'too_many_contacts'
            when names_count >= 2 and greatest(emails_count, phones_count) >= 2 then 'names_and_contacts_disagree'
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
        contacts_count,
        cut_reason is not null as is_cut,
        cut_reason

    from judged

)

select * from final
