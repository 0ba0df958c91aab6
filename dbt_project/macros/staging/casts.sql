{#- Casts that return null instead of failing the build on a malformed vendor value. -#}
{% macro try_timestamptz(expr) -%}
    intermediate.crm_try_timestamptz({{ expr }})
{%- endmacro %}

{% macro try_numeric(expr) -%}
    intermediate.crm_try_numeric({{ expr }})
{%- endmacro %}

{% macro try_int(expr) -%}
    round(intermediate.crm_try_numeric({{ expr }}))::integer
{%- endmacro %}

{#- "1", "true", "True", "yes" -> true; "0", "false", "no" -> false; anything else -> null -#}
{% macro try_bool(expr) -%}
    (case
        when lower(btrim({{ expr }})) in ('1', 'true', 't', 'yes', 'y') then true
        when lower(btrim({{ expr }})) in ('0', 'false', 'f', 'no', 'n') then false
    end)
{%- endmacro %}

{#- epoch milliseconds (LinkedIn) -> timestamptz -#}
{% macro epoch_ms_to_timestamptz(expr) -%}
    to_timestamp(intermediate.crm_try_numeric({{ expr }}) / 1000.0)
{%- endmacro %}

{#- trimmed text, null when empty -#}
{% macro clean_text(expr) -%}
    nullif(btrim({{ expr }}), '')
{%- endmacro %}
