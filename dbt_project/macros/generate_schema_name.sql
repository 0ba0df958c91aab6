{#- The custom schema is used verbatim (staging, intermediate, snapshots, marts_build): the schemas are
    created by crm_warehouse.bootstrap with their grants, and the publish step expects these names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
