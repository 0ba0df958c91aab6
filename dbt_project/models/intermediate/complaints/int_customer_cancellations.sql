{#- Churn signals: calls wrapped up with code cancel_request, with the customer who called.
    Incremental by record, with int_complaint_candidates_unioned (it says which records a run reaches:
    macros/incremental/complaint_changes.sql): a row changes only when its call's wrap-ups or its customer id
    do, and either reaches the call. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=["set local work_mem = '256MB'", "set local enable_nestloop = off", "set local jit = off",
            "{{ complaint_chain_changes('call_record_id') }}"],
        post_hook=[
            "create index if not exists int_customer_cancellations_customer_id on {{ this }} (customer_id)",
            "analyze {{ this }}"
        ]
    )
}}
-- depends_on: {{ ref('int_complaint_candidates_unioned') }}
{%- set incremental = identity_incremental() %}
with

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}
    {% if incremental %}
    where {{ probe_complaint_scope('call_record_id', this.identifier) }}
    {% endif %}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}
    {% if incremental %}
    where {{ probe_complaint_scope('record_id', this.identifier) }}
    {% endif %}

),

final as (

    select
        dispositions.disposition_id,
        customer_ids.customer_id,
        dispositions.call_record_id,
        dispositions.wrapped_at as cancelled_at

    from dispositions
    inner join customer_ids
        on customer_ids.record_id = dispositions.call_record_id
    where dispositions.is_cancellation

)

select * from final
