{#-
    The complaint chain (int_complaint_candidates_unioned, int_complaint_events_unioned,
    int_customer_cancellations, int_complaints_lifecycle, fct_complaints) is incremental by customer: whether a
    record is a complaint, its feedback, its events, repeats and the cancellation that was its outcome depend
    on the customer's own records only (a survey and the call or form it names, and a wrap-up's call and
    case, are linked records, so one customer; a company reply counts for the record it answers). A run
    recomputes every complaint of the customers the day's changes reach:

      sender                               reader                             what
      int_interactions_unioned             int_complaint_candidates_unioned   the records rewritten, and the
                                                                              records they answered before
      int_dispositions_unioned             int_complaint_candidates_unioned   the wrap-ups rewritten, and the
                                                                              calls and cases they named before
      int_customer_ids_assigned            int_complaint_candidates_unioned   the records whose customer id
                                                                              changed, with the id they had
      int_complaint_candidates_unioned     the four models after it           the records to recompute
                                                                              (record_id) and the customers
                                                                              (identifier_type customer_id)

    The customers reached are the customers, now and before, of the records reached (macro
    create_records_reached). The records recomputed are the records reached, the complaints those customers had
    and their survey responses, not every record of theirs: whether any other record is a complaint, and its
    events, depend on itself, its wrap-ups and the replies to it, and a change to any of those reaches it. A
    survey depends on its customer's direct complaints (feedback on a complaint is not a new one), which are
    among the records (a call or form that became a complaint was reached). Each model deletes its rows of those
    records (and, where it has a customer, of those customers) and appends them again from its inputs limited to
    them; int_complaints_lifecycle reads every cancellation of the customers (int_customer_cancellations, by
    customer). A full build of a sender makes the chain recompute everything.
-#}

{#- the pre-hook of int_complaint_candidates_unioned: the records to recompute
    (int_complaint_candidates_records) and the customers (int_complaint_candidates_customers), sent to the
    models after it; their complaints are deleted -#}
{% macro int_complaint_candidates_changes() %}
    {%- set readers = ['int_complaint_events_unioned', 'int_customer_cancellations', 'int_complaints_lifecycle',
                       'fct_complaints'] %}
    {{ receive_identity_changes('int_complaint_candidates_mail') }};
    {%- if identity_incremental() %}
        {{ create_records_reached('int_complaint_candidates_mail', 'int_complaint_candidates_reached') }};
        create temporary table int_complaint_candidates_customers on commit drop as
        select customer_id from {{ ref('int_customer_ids_assigned') }}
        where record_id = any(array(select record_id from int_complaint_candidates_reached))
        union
        select identifier_value from int_complaint_candidates_mail
        where identifier_type = 'customer_id' and identifier_value is not null;
        {{ index_scope('int_complaint_candidates_customers', 'customer_id') }};
        create temporary table int_complaint_candidates_records on commit drop as
        select record_id from int_complaint_candidates_reached
        union
        select complaint_id from {{ this }}
        where customer_id = any(array(select customer_id from int_complaint_candidates_customers))
        union
        select record_id from {{ ref('int_customer_ids_assigned') }}
        where customer_id = any(array(select customer_id from int_complaint_candidates_customers))
          and record_id like 'qualtrics:%';
        {{ index_scope('int_complaint_candidates_records', 'record_id') }};
        {#- the model's inputs, each probed once by its index and analyzed: read in the model's query instead, where
            a probe would be repeated by every reference to it and estimated at ten rows -#}
        {%- set by_record = probe_complaint_scope('record_id', 'int_complaint_candidates') %}
        {%- for name, model, condition in [
            ('interactions', 'int_interactions_unioned', by_record),
            ('dispositions', 'int_dispositions_unioned',
                probe_complaint_scope('call_record_id', 'int_complaint_candidates') ~ ' or '
                ~ probe_complaint_scope('case_record_id', 'int_complaint_candidates')),
            ('survey_responses', 'int_survey_responses_unioned', by_record),
            ('customer_ids', 'int_customer_ids_assigned', by_record),
            ('sentiment', 'stg_enrich__social_sentiment', by_record),
        ] %}
        create temporary table int_complaint_candidates_{{ name }} on commit drop as
        select * from {{ ref(model) }} where {{ condition }};
        analyze int_complaint_candidates_{{ name }};
        {%- endfor %}
        {{ send_identity_changes(readers,
            'select record_id, null::text, null::text from int_complaint_candidates_records'
            ~ " union all select null, 'customer_id', customer_id from int_complaint_candidates_customers") }};
        delete from {{ this }}
        where complaint_id in (select record_id from int_complaint_candidates_records)
           or customer_id in (select customer_id from int_complaint_candidates_customers)
    {%- else %}
        {{ send_identity_everything(readers) }}
        {%- if is_incremental() %};
        delete from {{ this }}
        {%- endif %}
    {%- endif %}
{% endmacro %}

{#- index and analyze the temporary scope table `table` on `column`: where the planner expects a row or two on
    the other side of a semi-join on the scope it runs it as a nested loop, which without the index scanned the
    whole scope once per row (163 times 223,091 records in a day of a million interactions) -#}
{% macro index_scope(table, column) %}
        create index on {{ table }} ({{ column }});
        analyze {{ table }}
{% endmacro %}

{#- a condition: `column` is one of the records to recompute (`scope`: the model whose temporary tables hold
    them, int_complaint_candidates or the reader's own name) -#}
{% macro in_complaint_scope(column, scope) -%}
    {{ column }} in (select record_id from {{ scope }}_records)
{%- endmacro %}

{#- the same condition as a probe of `column`'s index (the models' reads of their inputs): a semi-join on the scope
    reads the whole input when the planner expects the scope to be a large share of it, which it is not. The
    planner expects ten rows of such a probe, so the models turn nested loops off: it joined two probed inputs
    by comparing every row of one with every row of the other (minutes on a day of a million interactions) -#}
{% macro probe_complaint_scope(column, scope) -%}
    {{ column }} = any(array(select record_id from {{ scope }}_records))
{%- endmacro %}

{% macro of_complaint_scope_customer(column, scope) -%}
    {{ column }} in (select customer_id from {{ scope }}_customers)
{%- endmacro %}

{#- the pre-hook of the models after int_complaint_candidates_unioned: takes the records and customers to
    recompute into `<model>_records` and `<model>_customers` and deletes the rows of either (`record_column`:
    the record a row belongs to; `customer_column`, when the model has one, its customer) -#}
{% macro complaint_chain_changes(record_column, customer_column=none) %}
    {%- set scope = this.identifier %}
    {{ receive_identity_changes(scope ~ '_mail') }};
    {%- if identity_incremental() %}
        create temporary table {{ scope }}_records on commit drop as
        select distinct record_id from {{ scope }}_mail where record_id is not null;
        create temporary table {{ scope }}_customers on commit drop as
        select distinct identifier_value as customer_id from {{ scope }}_mail where identifier_type = 'customer_id';
        {{ index_scope(scope ~ '_records', 'record_id') }};
        {{ index_scope(scope ~ '_customers', 'customer_id') }};
        delete from {{ this }}
        where {{ in_complaint_scope(record_column, scope) }}
        {%- if customer_column %}
           or {{ of_complaint_scope_customer(customer_column, scope) }}
        {%- endif %}
    {%- else %}
        {{ delete_all_rows_if_incremental() }}
    {%- endif %}
{% endmacro %}
