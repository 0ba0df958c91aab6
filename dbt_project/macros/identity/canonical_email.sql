{#-
    Canonical email address. The same rules as crm_warehouse.identity.emails.canonical_email:
    remove whitespace, lower-case; must be local@domain.tld with one @; googlemail.com is gmail.com;
    plus-tags are removed on every domain; dots in gmail local parts are removed; an empty local part
    gives null.
-#}
{% macro canonical_email(expr) -%}
    (
        select case
            when s.local_part = '' then null
            else s.local_part || '@' || s.domain
        end
        from (
            select
                case
                    when split_part(c.addr, '@', 2) in ('gmail.com', 'googlemail.com')
                        then replace(split_part(split_part(c.addr, '@', 1), '+', 1), '.', '')
                    else split_part(split_part(c.addr, '@', 1), '+', 1)
                end as local_part,
                case
                    when split_part(c.addr, '@', 2) = 'googlemail.com' then 'gmail.com'
                    else split_part(c.addr, '@', 2)
                end as domain
            from (select lower(regexp_replace({{ expr }}, '\s+', '', 'g')) as addr) as c
            where c.addr ~ '^[^@]+@[^@]+\.[^@]+$'
        ) as s
    )
{%- endmacro %}

{#- A social handle as people write it ("@JDoe ", "jdoe") -> "jdoe" -#}
{% macro social_handle(expr) -%}
    nullif(lower(regexp_replace(regexp_replace(coalesce({{ expr }}, ''), '\s+', '', 'g'), '^@+', '')), '')
{%- endmacro %}
