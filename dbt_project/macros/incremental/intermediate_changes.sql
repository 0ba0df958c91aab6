{#- The pre-hooks of the incremental intermediate models (macro incremental_changes). -#}

{#- a disposition of either feed: both feeds' copies are read again (the phone system's wins) -#}
{% macro int_dispositions_changes() %}
    {{ incremental_changes(
        'int_dispositions_changed',
        ['phone_system__dispositions', 'sftp_call_center__dispositions'],
        'disposition_id',
        "case when arrived.raw_table = 'sftp_call_center__dispositions' then btrim(arrived.record_key)
            else arrived.record_key end"
    ) }}
{% endmacro %}

{#- a response of either delivery: both copies are read again (the API's wins) -#}
{% macro int_survey_responses_changes() %}
    {{ incremental_changes(
        'int_survey_responses_changed',
        ['survey_vendor__responses', 'sftp_survey_vendor__responses'],
        'response_id',
        "case when arrived.raw_table = 'sftp_survey_vendor__responses' then btrim(arrived.record_key)
            else arrived.record_key end"
    ) }}
{% endmacro %}

{#- every touchpoint stream; also the X mentions of users whose profile changed (handle, name, followers),
    the responses int_survey_responses_unioned rewrote, and the social records whose sentiment score is
    not the one the table holds (scored, or scored again, after the record was written) -#}
{% macro int_interactions_changes() %}
    {%- set record_ids = {
        'phone_system__calls': "'twilio:' || arrived.record_key",
        'sftp_call_center__calls': "'call_center:' || btrim(arrived.record_key)",
        'survey_vendor__responses': "'qualtrics:' || arrived.record_key",
        'sftp_survey_vendor__responses': "'qualtrics:' || btrim(arrived.record_key)",
        'web_forms__responses': "'typeform:' || arrived.record_key",
        'social_x__mentions': "'x:' || arrived.record_key",
        'social_facebook__comments': "'facebook:' || arrived.record_key",
        'social_linkedin__comments': "'linkedin:' || arrived.record_key",
    } -%}
    {%- set key_sql -%}
        case arrived.raw_table
        {%- for raw_table, record_id in record_ids.items() %}
            when '{{ raw_table }}' then {{ record_id }}
        {%- endfor %}
        end
    {%- endset -%}
    {%- set extra_sql -%}
        select 'social_x__mentions', interactions.reference_key, interactions.record_id
        from {{ this }} as interactions
        where interactions.source_system = 'x'
          and interactions.x_user_id in (
              select record_key from ({{ arrived_keys(['social_x__users'], incremental_since()) }}) as users
          )
        union
        select
            case interactions.source_system
                when 'x' then 'social_x__mentions'
                when 'facebook' then 'social_facebook__comments'
                when 'linkedin' then 'social_linkedin__comments'
            end,
            interactions.reference_key,
            interactions.record_id
        from {{ ref('stg_enrich__social_sentiment') }} as sentiment
        inner join {{ this }} as interactions
            on interactions.record_id = sentiment.record_id
        where interactions.sentiment_score is distinct from sentiment.sentiment_score
    {%- endset -%}
    {{ incremental_changes(
        'int_interactions_changed', record_ids.keys() | list, 'record_id', key_sql, extra_sql
    ) }}
{% endmacro %}
