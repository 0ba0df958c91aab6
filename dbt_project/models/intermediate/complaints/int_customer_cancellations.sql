{#- Churn signals: calls wrapped up with code cancel_request, with the customer who called. -#}
with

dispositions as (

    select * from {{ ref('int_dispositions_unioned') }}

),

customer_ids as (

    select * from {{ ref('int_customer_ids_assigned') }}

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
