{#-
    The incremental facts (fct_interactions, fct_survey_feedback) take what to rewrite from the mailboxes of
    macros/incremental/identity_changes.sql rather than from a high-water mark: a fact row depends on the
    record, on its customer id and on the customer id of the record it answers, and a customer id changes
    when the run clusters records again (int_customer_ids_assigned.changed_at is the run's clock, not the
    data's, so a mark would count every record a full build assigned as changed for a day).

      sender                        reader               what
      int_interactions_unioned      fct_interactions     the records rewritten (or deleted)
                                    fct_survey_feedback  the same (a survey follows the call or form it names)
      int_customer_ids_assigned     fct_interactions     the records whose customer id changed
                                    fct_survey_feedback  the same
      int_survey_responses_unioned  fct_survey_feedback  the responses rewritten (or deleted)

    A fact row also says whether its record is a complaint, which int_complaint_candidates_unioned decides (for
    the customers a run reaches, macros/incremental/complaint_changes.sql); the rows whose flag disagrees with it
    are found by comparing the two complaint sets whole (a partial index holds the complaints of the fact table;
    786,665 complaints at ten million interactions).
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
        {{ delete_touched_rows('interaction_id', 'fct_interactions_touched') }}
    {%- else %}
        {{ delete_all_rows_if_incremental() }}
    {%- endif %}
{% endmacro %}

{#- fct_survey_feedback: the responses to rewrite (fct_survey_feedback_touched): the records sent (responses
    rewritten, or whose customer id changed), the responses that followed a touchpoint sent (as the table holds
    them) and those that name a touchpoint sent now (a call or form that arrived, or changed, after its
    survey); their rows are deleted (the model appends them again; responses gone stay deleted) -#}
{% macro fct_survey_feedback_changes() %}
    {{ receive_identity_changes('fct_survey_feedback_mail') }};
    {%- if identity_incremental() %}
        create temporary table fct_survey_feedback_touched on commit drop as
        select record_id from fct_survey_feedback_mail
        where record_id is not null
        union
        -- semi-joins on the analyzed mail, not `= any(array(...))`: the mail holds a day's records (371,034 at ten
        -- million interactions), which a sequential scan would compare with each row one element at a time
        select survey_response_id from {{ this }}
        where followed_interaction_id in (select record_id from fct_survey_feedback_mail)
        union
        select record_id from {{ ref('int_survey_responses_unioned') }}
        where external_reference in (
            select reference_key from {{ ref('int_interactions_unioned') }}
            where record_id in (select record_id from fct_survey_feedback_mail)
        );
        {{ delete_touched_rows('survey_response_id', 'fct_survey_feedback_touched') }}
    {%- else %}
        {{ delete_all_rows_if_incremental() }}
    {%- endif %}
{% endmacro %}

{#- the end of a pre-hook that rewrites what a run touched: analyze the temporary table `touched` and delete the
    model's rows whose `key_column` is one of its `touched_column` (the model appends them again): probes of the
    key's unique index (a semi-join hashed the touched keys and read the whole table) -#}
{% macro delete_touched_rows(key_column, touched, touched_column='record_id') %}
        analyze {{ touched }};
        delete from {{ this }}
        where {{ key_column }} = any(array(select {{ touched_column }} from {{ touched }}))
{% endmacro %}

{#- the end of such a pre-hook when a sender was built in full: every row is recomputed (none to delete on the
    model's own first build) -#}
{% macro delete_all_rows_if_incremental() %}
    {%- if is_incremental() %}
        delete from {{ this }}
    {%- else %}
        select 1
    {%- endif %}
{% endmacro %}
