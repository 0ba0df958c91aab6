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
