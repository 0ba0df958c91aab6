{#-
    The incremental facts (fct_interactions) take what to rewrite from the mailboxes of
    macros/incremental/identity_changes.sql rather than from a high-water mark: a fact row depends on the
    record, on its customer id and on the customer id of the record it answers, and a customer id changes
    when the run clusters records again (int_customer_ids_assigned.changed_at is the run's clock, not the
    data's, so a mark would count every record a full build assigned as changed for a day).

      sender                     reader             what
      int_interactions_unioned   fct_interactions   the records rewritten (or deleted)
      int_customer_ids_assigned  fct_interactions   the records whose customer id changed

    A fact row also says whether its record is a complaint; int_complaint_candidates_unioned is rebuilt on
    every run, so the rows whose flag disagrees with it are found by comparing the two (a partial index
    holds the complaints of the fact table).
-#}

{#- fct_interactions: the records to rewrite (fct_interactions_touched): the records sent, the replies to them
    (a reply's customer is the customer of the record it answers) and the records whose complaint flag
    changed; their rows are deleted (the model appends them again; records gone stay deleted) -#}
{% macro fct_interactions_changes() %}
    {{ receive_identity_changes('fct_interactions_mail') }};
    {%- if identity_incremental() %}
        create temporary table fct_interactions_touched on commit drop as
        select record_id from fct_interactions_mail
        where record_id is not null
        union
        select record_id from {{ ref('int_interactions_unioned') }}
        where parent_record_id = any(array(
            select record_id from fct_interactions_mail where record_id is not null
        ))
        union
        (
            select complaint_id from {{ ref('int_complaint_candidates_unioned') }}
            except
            select interaction_id from {{ this }} where is_complaint
        )
        union
        (
            select interaction_id from {{ this }} where is_complaint
            except
            select complaint_id from {{ ref('int_complaint_candidates_unioned') }}
        );
        analyze fct_interactions_touched;
        delete from {{ this }}
        where interaction_id = any(array(select record_id from fct_interactions_touched))
    {%- elif is_incremental() %}
        delete from {{ this }}
    {%- else %}
        select 1
    {%- endif %}
{% endmacro %}
