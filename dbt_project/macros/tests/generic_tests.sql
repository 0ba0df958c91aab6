{#- Generic tests the project needs (dbt packages cannot be downloaded here). -#}

{#- every row satisfies a boolean SQL expression -#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}

{#- the combination of columns is unique -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- a numeric column lies within [min_value, max_value] (nulls pass) -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
    select *
    from {{ model }}
    where {{ column_name }} is not null
      and (
        false
        {%- if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
        {%- if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %}
      )
{% endtest %}

{#- the model has at least `min_rows` rows -#}
{% test not_empty(model, min_rows=1) %}
    select count(*) as n_rows
    from {{ model }}
    having count(*) < {{ min_rows }}
{% endtest %}
