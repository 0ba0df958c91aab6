{#-
    The quality gate's scope for dbt's data tests (plugins/crm_warehouse/quality/scope.py). An incremental gate
    runs `dbt test` with vars
      gate_batch_in_scope: a condition on batch_id, the ledger batches landed since the last passed gate;
      gate_written: a condition on a table's rows, written since the last passed gate (its xmin);
    and every test of single values (not_null, accepted_values, relationships, accepted_range,
    expression_is_true) reads only the changed rows of the model it tests:
      - a staging view: the records with a raw row in those batches, `record_key = any(array(...))`, a
        condition on the view's distinct-on key that PostgreSQL pushes through the view to the raw table's
        primary key (as the incremental models do, macros/incremental/changed_keys.sql);
      - a table dbt built: the rows written since. `xmin` has no index, so finding them scans the table: the
        test run's on-run-start hook (macro gate_copy_changed_rows) copies each tested table's changed rows
        once into `quality.gate_changed__<model>`, and the tests read the copy (before, each of the 128 tests
        of tables scanned its table, up to ten million rows at ten million interactions); the on-run-end hook
        drops the copies. Like the gate's own copies, they assume one gate at a time per warehouse.
    Uniqueness (unique, unique_combination_of_columns) is checked for the changed keys against the whole table
    (a key probe of the copy's keys); on a staging view, among its changed records (a staging key is its raw
    key: the raw primary key and the mart tests keep it unique across days). Tests of the whole table
    (not_empty, singular tests) and seeds are not scoped. Without the vars (a full gate, `dbt build`) every
    test reads every row.
-#}

{#- tests of single values: scoped to the changed rows -#}
{% macro gate_row_tests() %}
    {{ return(['not_null', 'accepted_values', 'relationships', 'accepted_range', 'expression_is_true']) }}
{% endmacro %}

{#- uniqueness: scoped by a key probe -#}
{% macro gate_unique_tests() %}
    {{ return(['unique', 'unique_combination_of_columns']) }}
{% endmacro %}

{#- written into the compiled SQL of every test limited to the changed rows: the gate labels those results with
    its scope (plugins/crm_warehouse/quality/dbt_tests.py reads it from run_results.json) -#}
{% macro gate_scope_marker() %}{{ return('crm_gate_scope: changed rows') }}{% endmacro %}

{#- the tables whose changed rows the tests read (models dbt builds as tables, tested by a scoped test) -#}
{% macro gate_copied_models() %}
    {%- set tested = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.attached_node -%}
        {%- set meta = node.test_metadata or {} -%}
        {%- if meta.get('name') in (gate_row_tests() + gate_unique_tests()) -%}
            {%- do tested.append(node.attached_node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set models = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.unique_id in tested
                                            and node.config.materialized in ('table', 'incremental') -%}
        {%- do models.append(node) -%}
    {%- endfor -%}
    {{ return(models) }}
{% endmacro %}

{#- the copy of a tested table's changed rows (model names are unique in a project, so the name is too) -#}
{% macro gate_changed_copy(node) -%}
    quality.{{ adapter.quote('gate_changed__' ~ node.alias) }}
{%- endmacro %}

{#- on-run-start: an incremental gate's test run copies each tested table's changed rows (one scan of the table),
    and the tests read the copies; any other run does nothing -#}
{% macro gate_copy_changed_rows() %}
    {%- set written = var('gate_written', none) -%}
    {%- if execute and flags.WHICH == 'test' and written is not none -%}
        create schema if not exists quality;
        {%- for node in gate_copied_models() %}
            {%- set relation = adapter.get_relation(database=node.database, schema=node.schema,
                                                    identifier=node.alias) %}
            {%- if relation is not none %}
        drop table if exists {{ gate_changed_copy(node) }};
        create unlogged table {{ gate_changed_copy(node) }} as select * from {{ relation }} where {{ written }};
        analyze {{ gate_changed_copy(node) }};
            {%- endif %}
        {%- endfor %}
    {%- endif -%}
{% endmacro %}

{#- on-run-end: the copies are dropped -#}
{% macro gate_drop_changed_copies() %}
    {%- if execute and flags.WHICH == 'test' and var('gate_written', none) is not none -%}
        {%- for node in gate_copied_models() %}
        drop table if exists {{ gate_changed_copy(node) }};
        {%- endfor %}
    {%- endif -%}
{% endmacro %}

{#- the condition selecting the changed rows of the node a test tests, or none (the whole model) -#}
{% macro gate_changed_rows_condition(tested) %}
    {%- set batch_in_scope = var('gate_batch_in_scope', none) -%}
    {%- set written = var('gate_written', none) -%}
    {%- if batch_in_scope is none or tested is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set materialized = tested.config.materialized if tested.config else none -%}
    {%- if tested.resource_type == 'model' and materialized == 'view' -%}
        {%- set sources = [] -%}
        {%- set refs = [] -%}
        {%- for upstream in tested.depends_on.nodes -%}
            {%- do (sources if upstream.startswith('source.') else refs).append(upstream) -%}
        {%- endfor -%}
        {%- if sources | length == 1 and refs | length == 0 -%}
            {%- set src = graph.sources[sources[0]] -%}
            {%- if src.schema == 'raw' -%}
                {%- set raw = adapter.quote(src.schema) ~ '.' ~ adapter.quote(src.identifier or src.name) -%}
                {%- if execute and adapter.get_relation(database=src.database, schema=src.schema,
                                                        identifier=src.identifier or src.name) is none -%}
                    {{ return(none) }}
                {%- endif -%}
                {{ return("record_key = any(array(select record_key from " ~ raw ~ " where "
                          ~ batch_in_scope ~ "))") }}
            {%- endif -%}
        {%- endif -%}
        {{ return(none) }}
    {%- elif tested.resource_type == 'model' and materialized in ('table', 'incremental') -%}
        {{ return(written) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}

{#- The relation a test reads (dbt calls this for every generic test's `model`): dbt's own `where` config,
    and the gate's scope. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set meta = model.get('test_metadata') if model is mapping else none -%}
    {%- set test_name = meta.get('name') if meta else none -%}
    {%- set tested_id = model.get('attached_node') if model is mapping else none -%}
    {%- set tested = graph.nodes.get(tested_id) if (execute and tested_id) else none -%}
    {%- set changed = gate_changed_rows_condition(tested) if test_name else none -%}
    {#- a table's changed rows are read from their copy (macro gate_copy_changed_rows) -#}
    {%- set copy = gate_changed_copy(tested) if (changed and tested.config.materialized != 'view') else none -%}
    {%- set read = copy if (copy and test_name in gate_row_tests()) else relation -%}
    {%- set conditions = [] -%}
    {%- if where -%}{%- do conditions.append('(' ~ where ~ ')') -%}{%- endif -%}
    {%- set limited = changed and test_name in (gate_row_tests() + gate_unique_tests()) -%}
    {%- if changed and test_name in gate_row_tests() and not copy -%}
        {%- do conditions.append('(' ~ changed ~ ')') -%}
    {%- elif changed and test_name in gate_unique_tests() -%}
        {%- set kwargs = meta.get('kwargs', {}) -%}
        {%- set columns = [kwargs.get('column_name')] if kwargs.get('column_name') else
                          kwargs.get('combination_of_columns', []) -%}
        {%- if copy and columns -%}
            {#- key probe: every row sharing a key with a changed row; through an index on the key's first column
                when the table has one (a hash semi-join reads the whole table) -#}
            {%- if gate_has_index(relation, columns[0]) -%}
                {%- do conditions.append('(' ~ columns[0] ~ ' = any(array(select ' ~ columns[0] ~ ' from ' ~ copy
                                         ~ ')))') -%}
            {%- endif -%}
            {%- do conditions.append('((' ~ columns | join(', ') ~ ') in (select ' ~ columns | join(', ')
                                     ~ ' from ' ~ copy ~ '))') -%}
        {%- elif copy -%}
            {%- set read = copy -%}
        {%- else -%}
            {%- do conditions.append('(' ~ changed ~ ')') -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions or limited -%}
        {#- the marker tells the gate (quality/dbt_tests.py) which tests read only the changed rows -#}
        {%- set filtered -%}
            (select * from {{ read }} {% if limited %}/* {{ gate_scope_marker() }} */ {% endif -%}
            {%- if conditions %} where {{ conditions | join(' and ') }}{% endif %}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- true when `relation` (a table) has an index whose first column is `column`, unconditional or on the column's
    non-null values: `column = any(array(...))` then probes it. Without one, PostgreSQL would compare every row
    with every element of the array, so the probes are only written where this holds. -#}
{% macro gate_has_index(relation, column) %}
    {%- if not execute or relation is none or relation.identifier is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set query -%}
        select exists (
            select from pg_index as i
            inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
            where i.indrelid = to_regclass({{ dbt.string_literal(adapter.quote(relation.schema) ~ '.'
                                                                 ~ adapter.quote(relation.identifier)) }})
              and a.attname = {{ dbt.string_literal(column) }}
              and (i.indpred is null
                   or pg_get_expr(i.indpred, i.indrelid) = {{ dbt.string_literal('(' ~ column ~ ' IS NOT NULL)') }})
        )
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{% endmacro %}

{#- dbt's relationships test. In an incremental gate (the child is the changed rows of a table or view), the parent
    is probed for the child's values through an index on the parent's column when it has one, instead of read
    whole (at ten million interactions, seconds per test) -#}
{% macro default__test_relationships(model, column_name, to, field) %}
{%- set probed = gate_scope_marker() in (model | string) and gate_has_index(to, field) %}

with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
    {%- if probed %}
    where {{ field }} = any(array(select from_field from child))
    {%- endif %}
)

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null

{% endmacro %}
