{#-
    The value of a Typeform answer, found by field ref (CONTRACTS section 6), falling back to the first
    answer of `answer_type` when no field has that ref. `value_expr` reads the answer object `a`:
    a->>'text', a->>'email', a->>'phone_number', a->'choice'->>'label', a->>'boolean', a->>'number'.
    `answers` may be null in the API: treated as no answers.
-#}
{% macro typeform_answer(ref, value_expr, answer_type=none) -%}
    (
        select {{ value_expr }}
        from jsonb_array_elements(
            case when jsonb_typeof(payload->'answers') = 'array' then payload->'answers' else '[]'::jsonb end
        ) with ordinality as t(a, position)
        where t.a->'field'->>'ref' = '{{ ref }}'
        {%- if answer_type %} or t.a->>'type' = '{{ answer_type }}'{% endif %}
        order by (t.a->'field'->>'ref' = '{{ ref }}') desc, t.position
        limit 1
    )
{%- endmacro %}
