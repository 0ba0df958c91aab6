{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    unlogged=true,
    indexes=[{'columns': ['identifier_value']}],
    pre_hook=["set local work_mem = '256MB'", "set local enable_mergejoin = off", "set local enable_nestloop = off",
        "set local jit = off", "{{ int_identifiers_guarded_changes() }}"],
    post_hook=["analyze {{ this }}", "{{ int_identifiers_guarded_written() }}"]
) }}
{%- set incremental = identity_incremental() %}
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
    One person with two emails, or with a short and a full spelling of one name, is not cut.
    Cost: most identifiers speak for one person, whose records agree on each contact: one hash aggregate
    keeps the smallest and largest contact of each kind, and only the identifiers where those differ are
    counted exactly (count(distinct) sorts). Plans are kept to hash joins (the CTEs have no statistics, and
    sorting text in the database's collation is slow).
    anchor_record_id is the identifier's smallest record (in collation "C"): the anchor of its star in
    int_identity_edges_built.
    Each row keeps the distinct values it was judged on (name_keys, emails, phones, customer_refs, sorted in
    collation "C"), so that what a day adds is merged into them instead of being counted again from every record.
    Incremental (macros/incremental/identity_changes.sql, macro int_identifiers_guarded_changes):
      - identifiers a record no longer reaches with a value it reached before (a record dropped an identifier
        or a name, a link gone) are judged again from their records: those the records that dropped something
        carry now or carried before, and those carried by records linked to them;
      - identifiers that only gained (a record took them, a new link, a record took a name, email, phone or
        customer_ref it did not have) merge what they gained into the values they keep (int_identifiers_guarded_merged):
        the records and links of the day are read, not the identifier's other records.
    It tells int_identity_edges_built the identifiers whose cut changed (their stars are drawn again). -#}
with

identifiers as not materialized (

    -- read twice from the table rather than copied once into a work table (same for strong)
    select * from {{ ref('int_identifiers_unioned') }}

),

links as not materialized (

    -- read twice: inlined, so that an incremental run finds the links of its records by index
    select * from {{ ref('int_record_links_unioned') }}

),

strong as not materialized (

    select record_id, identifier_type, identifier_value from identifiers
    where is_strong
    {% if incremental %}
      -- every record carrying an identifier to judge again (an index scan: = any(array(...)))
      and identifier_value = any(array(select identifier_value from int_identifiers_guarded_changed))
      and (identifier_type, identifier_value) in (
          select identifier_type, identifier_value from int_identifiers_guarded_changed
      )
    {% endif %}

),

neighbours as (

    select record_id, linked_record_id as neighbour_record_id from links
    {% if incremental %}
    where record_id = any(array(select record_id from strong))
    {% endif %}
    union
    select linked_record_id, record_id from links
    {% if incremental %}
    where linked_record_id = any(array(select record_id from strong))
    {% endif %}

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

record_profiles as (

    {{ guard_record_profiles('identifiers', 'select reached_record_id from reached' if incremental else none) }}

),

reached_profiles as materialized (

    -- the contacts of the reached records, other than the identifier's own kind (a phone's readings are
    -- not phone contacts of it)
    select
        reached.identifier_type,
        reached.identifier_value,
        reached.is_own,
        case when reached.is_own then reached.reached_record_id end as own_record_id,
        record_profiles.name_key,
        case when reached.identifier_type <> 'email' then record_profiles.email end as email,
        case when reached.identifier_type <> 'phone' then record_profiles.phone end as phone,
        case when reached.identifier_type <> 'customer_ref' then record_profiles.customer_ref end as customer_ref

    from reached
    left join record_profiles
        on record_profiles.record_id = reached.reached_record_id

),

summarised as (

    select
        identifier_type,
        identifier_value,
        count(*) filter (where is_own) as records_count,
        min(own_record_id collate "C") as anchor_record_id,
        min(name_key collate "C") as min_name_key,
        max(name_key collate "C") as max_name_key,
        min(email collate "C") as min_email,
        max(email collate "C") as max_email,
        min(phone collate "C") as min_phone,
        max(phone collate "C") as max_phone,
        min(customer_ref collate "C") as min_customer_ref,
        max(customer_ref collate "C") as max_customer_ref
    from reached_profiles
    group by identifier_type, identifier_value

),

disagreeing as materialized (

    -- identifiers whose records carry two or more contacts of one kind: counted exactly below
    select identifier_type, identifier_value
    from summarised
    where min_name_key <> max_name_key
       or min_email <> max_email
       or min_phone <> max_phone
       or min_customer_ref <> max_customer_ref

),

disagreeing_profiled as materialized (

    select
        reached_profiles.identifier_type,
        reached_profiles.identifier_value,
        {{ guard_values('reached_profiles.name_key') }} as name_keys,
        {{ guard_values('reached_profiles.email') }} as emails,
        {{ guard_values('reached_profiles.phone') }} as phones,
        {{ guard_values('reached_profiles.customer_ref') }} as customer_refs

    from reached_profiles
    inner join disagreeing
        on disagreeing.identifier_type = reached_profiles.identifier_type
        and disagreeing.identifier_value = reached_profiles.identifier_value
    group by reached_profiles.identifier_type, reached_profiles.identifier_value

),

recomputed as (

    -- the values each identifier was judged on: one value of a kind (or none) where the smallest and largest agree
    select
        summarised.identifier_type,
        summarised.identifier_value,
        summarised.records_count,
        summarised.anchor_record_id,
        coalesce(disagreeing_profiled.name_keys, {{ guard_single('summarised.min_name_key') }}) as name_keys,
        coalesce(disagreeing_profiled.emails, {{ guard_single('summarised.min_email') }}) as emails,
        coalesce(disagreeing_profiled.phones, {{ guard_single('summarised.min_phone') }}) as phones,
        coalesce(disagreeing_profiled.customer_refs, {{ guard_single('summarised.min_customer_ref') }})
            as customer_refs

    from summarised
    left join disagreeing_profiled
        on disagreeing_profiled.identifier_type = summarised.identifier_type
        and disagreeing_profiled.identifier_value = summarised.identifier_value

),

profiled as materialized (

    select * from recomputed
    {% if incremental %}
    union all
    -- the identifiers that only gained, their values merged by the pre-hook
    select * from int_identifiers_guarded_merged
    {% endif %}

),

identifier_names as materialized (

    select identifier_type, identifier_value, unnest(name_keys) as name_key
    from profiled
    where cardinality(name_keys) >= 2

),

name_tokens as materialized (

    -- the words of a name key, once per distinct key
    select name_key, string_to_array(name_key, ' ') as tokens
    from (select distinct name_key from identifier_names) as name_keys

),

name_words as (

    select name_key, unnest(tokens) as word
    from name_tokens

),

name_containments as materialized (

    -- pairs of distinct name keys where the longer has every word of the shorter ("chris" in "chris
    -- collins"): it has the shorter's first word
    select shorter.name_key as shorter_name_key, longer.name_key as longer_name_key
    from name_tokens as shorter
    inner join name_words as longer_words
        on longer_words.word = shorter.tokens[1]
    inner join name_tokens as longer
        on longer.name_key = longer_words.name_key
    where longer.name_key <> shorter.name_key
      and longer.tokens @> shorter.tokens

),

longer_names as materialized (

    -- the keys each name key of an identifier contains (a key contains few others, while a common first
    -- name is in thousands of keys: this side first)
    select identifier_names.identifier_type, identifier_names.identifier_value, name_containments.shorter_name_key
    from identifier_names
    inner join name_containments
        on name_containments.longer_name_key = identifier_names.name_key

),

contained_counted as (

    -- name keys of an identifier that another key of the same identifier contains
    select identifier_type, identifier_value, count(distinct shorter_name_key) as contained_names_count
    from longer_names
    where exists (
        select 1 from identifier_names as shorter
        where shorter.identifier_type = longer_names.identifier_type
          and shorter.identifier_value = longer_names.identifier_value
          and shorter.name_key = longer_names.shorter_name_key
    )
    group by identifier_type, identifier_value

),

counted as (

    select
        profiled.identifier_type,
        profiled.identifier_value,
        profiled.records_count,
        profiled.anchor_record_id,
        -- people by name: name keys that no other key of the identifier contains
        cardinality(profiled.name_keys) - coalesce(contained_counted.contained_names_count, 0) as names_count,
        cardinality(profiled.emails) as emails_count,
        cardinality(profiled.phones) as phones_count,
        cardinality(profiled.customer_refs) as customer_refs_count,
        profiled.name_keys,
        profiled.emails,
        profiled.phones,
        profiled.customer_refs

    from profiled
    left join contained_counted
        on contained_counted.identifier_type = profiled.identifier_type
        and contained_counted.identifier_value = profiled.identifier_value

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
        cut_reason,
        anchor_record_id,
        name_keys,
        emails,
        phones,
        customer_refs

    from judged

)

select * from final
