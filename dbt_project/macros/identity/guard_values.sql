{#- The distinct values an identifier of int_identifiers_guarded was judged on (its name keys, emails, exact phones,
    customer_refs), as a text array sorted in collation "C": written the same way by a full build, a judgement
    again and a merge, so that an incremental run leaves the rows a full build gives. -#}

{#- aggregate: the distinct non-null values of `expr` -#}
{% macro guard_values(expr) -%}
    (coalesce(
        array_agg(distinct ({{ expr }} collate "C") order by ({{ expr }} collate "C"))
            filter (where {{ expr }} is not null),
        '{}'
    ) collate "default")
{%- endmacro %}

{#- the one value of `expr`, or none -#}
{% macro guard_single(expr) -%}
    (case when {{ expr }} is null then '{}'::text[] else array[{{ expr }}::text] end collate "default")
{%- endmacro %}

{#- the values of two arrays of values, merged -#}
{% macro guard_merge(a, b) -%}
    (array(
        select distinct merged.value collate "C"
        from unnest(coalesce({{ a }}, '{}') || coalesce({{ b }}, '{}')) as merged (value)
        order by 1
    ) collate "default")
{%- endmacro %}

{#- the kinds of identifier a record's profile holds (the contacts and the name the guard compares) -#}
{% macro guard_profile_types() -%}
    'name', 'email', 'phone', 'customer_ref'
{%- endmacro %}

{#- one row per record of `identifiers` (of those `records` selects, when given) with its profile: it carries at
    most one name key, email, exact phone and customer_ref. Read by the model in full and by the merge of a day's
    gains (macro int_identifiers_guarded_changes): both must profile a record alike -#}
{% macro guard_record_profiles(identifiers, records=none) %}
    select
        record_id,
        max(identifier_value) filter (where identifier_type = 'name') as name_key,
        max(identifier_value) filter (where identifier_type = 'email') as email,
        max(identifier_value) filter (where identifier_type = 'phone' and is_exact) as phone,
        max(identifier_value) filter (where identifier_type = 'customer_ref') as customer_ref
    from {{ identifiers }}
    where identifier_type in ({{ guard_profile_types() }})
    {%- if records %}
      and record_id = any(array({{ records }}))
    {%- endif %}
    group by record_id
{% endmacro %}
