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
        select survey_response_id from {{ this }}
        where followed_interaction_id = any(array(
            select record_id from fct_survey_feedback_mail where record_id is not null
        ))
        union
        select record_id from {{ ref('int_survey_responses_unioned') }}
        where external_reference = any(array(
            select reference_key from {{ ref('int_interactions_unioned') }}
            where record_id = any(array(
                select record_id from fct_survey_feedback_mail where record_id is not null
            ))
        ));
        analyze fct_survey_feedback_touched;
        delete from {{ this }}
        where survey_response_id = any(array(select record_id from fct_survey_feedback_touched))
    {%- elif is_incremental() %}
        delete from {{ this }}
    {%- else %}
        select 1
    {%- endif %}
{% endmacro %}
