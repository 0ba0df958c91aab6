{#- The pre-hooks of the incremental intermediate models (macro incremental_changes). -#}

{#- the natural key of a raw row of a stream delivered twice, by API and by SFTP file: the files' keys are
    trimmed, as the staging views do (`raw_table`, `record_key`: columns, qualified as the caller needs) -#}
{% macro two_feed_key(sftp_table, raw_table='arrived.raw_table', record_key='arrived.record_key') -%}
    case when {{ raw_table }} = '{{ sftp_table }}' then btrim({{ record_key }}) else {{ record_key }} end
{%- endmacro %}

{#- the pre-hook of a model unioning both deliveries of a stream: both copies are read again (the API's wins) -#}
{% macro two_feed_changes(changes, api_table, sftp_table, key_column, before_delete=none, on_full_build=none) %}
    {{ incremental_changes(changes, [api_table, sftp_table], key_column, two_feed_key(sftp_table),
                           before_delete=before_delete, on_full_build=on_full_build) }}
{% endmacro %}

{#- dim_customers and int_complaint_candidates_unioned are told (macros/identity_changes) the dispositions
    rewritten and the calls and cases they were about before: complaints, their events and cancellations come
    from wrap-ups -#}
{% macro int_dispositions_changes() %}
    {%- set before_delete -%}
        {{ send_identity_changes(['dim_customers', 'int_complaint_candidates_unioned'],
            "select null::text, 'disposition_id', disposition_id from int_dispositions_changed") }};
        {{ send_identity_changes(['dim_customers', 'int_complaint_candidates_unioned'],
            'select record_id, null::text, null::text from ' ~ this ~ ' as dispositions'
            ~ ' cross join lateral (values (dispositions.call_record_id), (dispositions.case_record_id))'
            ~ ' as records (record_id)'
            ~ ' where record_id is not null'
            ~ ' and disposition_id in (select disposition_id from int_dispositions_changed)') }};
        {#- int_record_links_unioned: the calls the wrap-ups rewritten were about before (a wrap-up moved to
            another call leaves its old call's case link unsupported) -#}
        {{ send_identity_changes(['int_record_links_unioned'],
            'select call_record_id, null::text, null::text from ' ~ this
            ~ ' where call_record_id is not null'
            ~ ' and disposition_id in (select disposition_id from int_dispositions_changed)') }}
    {%- endset -%}
    {{ two_feed_changes('int_dispositions_changed', 'phone_system__dispositions', 'sftp_call_center__dispositions',
                        'disposition_id', before_delete,
                        send_identity_everything(['dim_customers', 'int_complaint_candidates_unioned',
                                                  'int_record_links_unioned'])) }}
{% endmacro %}

{#- fct_survey_feedback is told (macros/fact_changes) the responses rewritten, by record id (the staging views'
    'qualtrics:' || response id) -#}
{% macro int_survey_responses_changes() %}
    {{ two_feed_changes('int_survey_responses_changed', 'survey_vendor__responses',
                        'sftp_survey_vendor__responses', 'response_id',
                        send_identity_changes(['fct_survey_feedback'],
                            "select 'qualtrics:' || response_id, null::text, null::text"
                            ~ " from int_survey_responses_changed"),
                        send_identity_everything(['fct_survey_feedback'])) }}
{% endmacro %}

{#- the record id of a touchpoint's raw key, as the staging views write it (`arrived`: raw_table, record_key) -#}
{% macro interaction_record_ids() -%}
    {{ return({
        'phone_system__calls': "'twilio:' || arrived.record_key",
        'sftp_call_center__calls': "'call_center:' || btrim(arrived.record_key)",
        'survey_vendor__responses': "'qualtrics:' || arrived.record_key",
        'sftp_survey_vendor__responses': "'qualtrics:' || btrim(arrived.record_key)",
        'web_forms__responses': "'typeform:' || arrived.record_key",
        'social_x__mentions': "'x:' || arrived.record_key",
        'social_facebook__comments': "'facebook:' || arrived.record_key",
        'social_linkedin__comments': "'linkedin:' || arrived.record_key",
    }) }}
{%- endmacro %}

{% macro interaction_record_id() -%}
    case arrived.raw_table
    {%- for raw_table, record_id in interaction_record_ids().items() %}
        when '{{ raw_table }}' then {{ record_id }}
    {%- endfor %}
    end
{%- endmacro %}

{#- the raw tables of the touchpoint streams -#}
{% macro interaction_raw_tables() -%}
    {{ return(interaction_record_ids().keys() | list) }}
{%- endmacro %}

{#- the X mentions (in `interactions`) of users with a raw row since the mark: their handle, name and reach
    come from the user (`raw_table`: the first column's value) -#}
{% macro mentions_of_changed_x_users(interactions, raw_table='social_x__mentions') %}
        select '{{ raw_table }}', interactions.reference_key, interactions.record_id
        from {{ interactions }} as interactions
        where interactions.source_system = 'x'
          and interactions.x_user_id = any(array(
              select record_key from ({{ arrived_keys(['social_x__users'], incremental_since()) }}) as users
          ))
{% endmacro %}

{#- every touchpoint stream; also the X mentions of users whose profile changed (handle, name, followers),
    the responses int_survey_responses_unioned rewrote, and the social records whose sentiment score is
    not the one the table holds (scored, or scored again, after the record was written): among the texts scored
    since the last run, found by the index on scored_at from the note the last run left itself (post-hook, macro
    int_interactions_written) -#}
{% macro int_interactions_changes() %}
    {%- set extra_sql -%}
        {{ mentions_of_changed_x_users(this) }}
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
        -- the texts scored since the newest score the last run saw (its note, below), an hour back for scoring
        -- transactions that committed late (scored_at is when one began); without a note, every text
        where sentiment.scored_at > (
            select coalesce(max(identifier_value::timestamptz) - interval '1 hour', '-infinity'::timestamptz)
            from int_interactions_unioned_mail
            where identifier_type = 'sentiment_scored_at'
        )
          and interactions.sentiment_score is distinct from sentiment.sentiment_score
    {%- endset -%}
    {#- dim_customers and int_complaint_candidates_unioned are told (macros/identity_changes) the records
        rewritten and the records they answered before (a company reply counts for the customer of the record
        it answers); fct_interactions and fct_survey_feedback the records rewritten (macros/fact_changes) -#}
    {%- set before_delete -%}
        {{ send_identity_changes(['dim_customers', 'int_complaint_candidates_unioned'],
            'select record_id, null::text, null::text from int_interactions_changed'
            ~ ' union all select parent_record_id, null, null from ' ~ this
            ~ ' where parent_record_id is not null'
            ~ ' and record_id in (select record_id from int_interactions_changed)') }};
        {{ send_identity_changes(['fct_interactions', 'fct_survey_feedback'],
            'select record_id, null::text, null::text from int_interactions_changed') }};
        -- whether the records rewritten were customer records (a node of the identity graph) before: the
        -- post-hook tells int_identity_edges_built those that appear, disappear or change side
        create temporary table int_interactions_unioned_before on commit drop as
        select record_id, is_customer_record from {{ this }}
        where record_id = any(array(select record_id from int_interactions_changed))
    {%- endset -%}
    {{ receive_identity_changes('int_interactions_unioned_mail') }};
    -- the newest sentiment score this run can read, taken before the model reads them (post-hook: the note)
    create temporary table int_interactions_unioned_scores_seen on commit drop as
    select max(scored_at) as scored_at from {{ ref('stg_enrich__social_sentiment') }};
    {{ incremental_changes(
        'int_interactions_changed', interaction_raw_tables(), 'record_id', interaction_record_id(), extra_sql,
        before_delete,
        send_identity_everything(['dim_customers', 'fct_interactions', 'fct_survey_feedback',
                                  'int_complaint_candidates_unioned', 'int_identity_edges_built'])
    ) }}
{% endmacro %}

{#- the post-hook of int_interactions_unioned: a note to itself of the newest sentiment score it read; on an
    incremental run, int_identity_edges_built is told the records rewritten that are a customer record (a node of
    the identity graph, with a self edge) now and were not before, or were and are not now -#}
{% macro int_interactions_written() %}
    {{ send_identity_changes(['int_interactions_unioned'],
        "select null::text, 'sentiment_scored_at', scored_at::text from int_interactions_unioned_scores_seen"
        ~ " where scored_at is not null") }}
    {%- if is_incremental() %};
    {{ send_identity_changes(['int_identity_edges_built'],
        'select changed.record_id, null::text, null::text'
        ~ ' from (select distinct record_id from int_interactions_changed) as changed'
        ~ ' left join int_interactions_unioned_before as before_ on before_.record_id = changed.record_id'
        ~ ' left join ' ~ this ~ ' as now_ on now_.record_id = changed.record_id'
        ~ ' where coalesce(before_.is_customer_record, false) <> coalesce(now_.is_customer_record, false)') }}
    {%- endif %}
{% endmacro %}

{#- the records with a raw row since the mark, the X mentions of users whose profile changed, and the
    records whose phone number was normalised (again) after the newest normalisation the table used
    (enrichment that arrived late, or new normalisation rules; enrichment runs before dbt, not during) -#}
{% macro int_identifiers_changes() %}
    {%- set extra_sql -%}
        -- each a probe of an index of int_interactions_unioned (with `or`, one statement read every touchpoint)
        {{ mentions_of_changed_x_users(ref('int_interactions_unioned'), 'other') }}
        union
        select 'other', interactions.reference_key, interactions.record_id
        from {{ ref('int_interactions_unioned') }} as interactions
        where interactions.phone_raw = any(array(
            select raw_phone from {{ ref('stg_enrich__phone_numbers') }}
            where normalized_at > (
                -- the index int_identifiers_unioned_phone_normalized_at
                select coalesce(max(phone_normalized_at), '-infinity'::timestamptz) from {{ this }}
            )
        ))
    {%- endset -%}
    {#- the identity chain's mail (macros identity_changes): the records rewritten; what they carried before is kept
        for the post-hook (int_identifiers_unioned_written), which tells int_identifiers_guarded and
        int_identity_edges_built what changed -#}
    {%- set before_delete -%}
        {{ send_identity_changes(['dim_customers'],
            'select record_id, null::text, null::text from int_identifiers_changed') }};
        create temporary table int_identifiers_unioned_before on commit drop as
        select record_id, identifier_type, identifier_value, is_exact from {{ this }}
        where record_id = any(array(select record_id from int_identifiers_changed))
    {%- endset -%}
    {%- set on_full_build -%}
        {{ send_identity_everything(['int_identifiers_guarded', 'int_identity_edges_built', 'dim_customers']) }};
        -- nothing for the post-hook to compare
        create temporary table int_identifiers_changed (record_id text) on commit drop;
        create temporary table int_identifiers_unioned_before (
            record_id text, identifier_type text, identifier_value text, is_exact boolean
        ) on commit drop
    {%- endset -%}
    {{ identity_mail_lock(shared=true) }};
    {{ incremental_changes(
        'int_identifiers_changed', interaction_raw_tables(), 'record_id', interaction_record_id(), extra_sql,
        before_delete, on_full_build
    ) }}
{% endmacro %}

{#- The post-hook of int_identifiers_unioned: what the records rewritten carried before, compared with what they
    carry now.
    int_identifiers_guarded is told (macro int_identifiers_guarded_changes):
      - each record that dropped something (an identifier, a name, an exact reading of its phone, or an inexact
        one), and the strong identifiers it carried before: judged again from their records;
      - each identifier or name a record took: merged into what the guard keeps.
    int_identity_edges_built is told each strong identifier a record took (record_id, identifier_type,
    identifier_value: a new point of the identifier's star, when the star did not change as a whole), and each one
    a record no longer carries (null, identifier_type, identifier_value: its star is drawn again). -#}
{% macro int_identifiers_unioned_written() %}
    create temporary table int_identifiers_unioned_after on commit drop as
    select record_id, identifier_type, identifier_value, is_exact from {{ this }}
    where record_id = any(array(select record_id from int_identifiers_changed));
    create temporary table int_identifiers_unioned_dropped on commit drop as
    select * from int_identifiers_unioned_before
    except
    select * from int_identifiers_unioned_after;
    create temporary table int_identifiers_unioned_taken on commit drop as
    select * from int_identifiers_unioned_after
    except
    select * from int_identifiers_unioned_before;
    insert into intermediate.identity_changes (reader, record_id, identifier_type, identifier_value)
    select distinct 'int_identifiers_guarded', record_id, null, null from int_identifiers_unioned_dropped
    union all
    select distinct 'int_identifiers_guarded', null, before_.identifier_type, before_.identifier_value
    from int_identifiers_unioned_before as before_
    where before_.identifier_type <> 'name'
      and before_.record_id in (select record_id from int_identifiers_unioned_dropped)
    union all
    select distinct 'int_identifiers_guarded', record_id, identifier_type, identifier_value
    from int_identifiers_unioned_taken;
    insert into intermediate.identity_changes (reader, record_id, identifier_type, identifier_value)
    with
    strong_before as (
        select record_id, identifier_type, identifier_value from int_identifiers_unioned_before
        where identifier_type <> 'name'
    ),
    strong_after as (
        select record_id, identifier_type, identifier_value from int_identifiers_unioned_after
        where identifier_type <> 'name'
    ),
    added as (
        select * from strong_after
        except
        select * from strong_before
    ),
    dropped as (
        select * from strong_before
        except
        select * from strong_after
    )
    select 'int_identity_edges_built', record_id, identifier_type, identifier_value from added
    union
    select 'int_identity_edges_built', null, identifier_type, identifier_value from dropped
{% endmacro %}

{#- the links' owners (record_id: the call of a case link, the survey of a survey link) to rewrite: the records
    with a raw row since the mark (a record can appear, change its reference or stop being a customer's), the
    calls of the wrap-ups with a raw row since the mark, the calls whose wrap-up names a changed record as its
    case, the surveys naming a changed record's reference, the owners of links to or from a changed record,
    and the calls the wrap-ups rewritten were about before (int_dispositions_unioned's mail: a wrap-up moved to
    another call leaves a case link no wrap-up supports; after a full build of int_dispositions_unioned, every
    call holding such a link) -#}
{% macro int_record_links_changes() %}
    {%- set changes = 'int_record_links_changed' -%}
    {%- set extra_sql -%}
        select 'link', dispositions.disposition_id, dispositions.call_record_id
        from {{ ref('int_dispositions_unioned') }} as dispositions
        where dispositions.disposition_id = any(array(
            select {{ two_feed_key('sftp_call_center__dispositions', 'raw_table', 'record_key') }}
            from {{ changes }}
            where raw_table in ('phone_system__dispositions', 'sftp_call_center__dispositions')
        ))
        union
        -- probes of the indexes (in one statement with `or`, PostgreSQL read every wrap-up)
        select 'link', dispositions.disposition_id, dispositions.call_record_id
        from {{ ref('int_dispositions_unioned') }} as dispositions
        where dispositions.case_record_id = any(array(select record_id from {{ changes }}))
        union
        select 'link', surveys.response_id, surveys.record_id
        from {{ ref('int_survey_responses_unioned') }} as surveys
        where surveys.external_reference = any(array(
            select interactions.reference_key
            from {{ ref('int_interactions_unioned') }} as interactions
            where interactions.record_id = any(array(select record_id from {{ changes }}))
        ))
        union
        select 'link', links.linked_record_id, links.record_id
        from {{ this }} as links
        where links.linked_record_id in (select record_id from {{ changes }})
        union
        {%- if identity_incremental() %}
        -- the calls the wrap-ups rewritten were about before (int_dispositions_unioned's mail)
        select 'link', null, record_id from int_record_links_mail where record_id is not null
        {%- else %}
        -- int_dispositions_unioned was built in full: every case link no wrap-up supports any more
        select 'link', links.linked_record_id, links.record_id
        from {{ this }} as links
        where links.link_type = 'disposition_case_ref'
          and not exists (
              select from {{ ref('int_dispositions_unioned') }} as dispositions
              where dispositions.call_record_id = links.record_id
                and dispositions.case_record_id = links.linked_record_id
          )
        {%- endif %}
    {%- endset -%}
    {#- the identity chain's mail (macros identity_changes): the owners rewritten; the links they had before are kept
        for the post-hook (int_record_links_written), which tells int_identifiers_guarded what changed -#}
    {%- set before_delete -%}
        create temporary table int_record_links_before on commit drop as
        select distinct record_id, linked_record_id, link_type from {{ this }}
        where record_id = any(array(select record_id from {{ changes }}))
    {%- endset -%}
    {%- set on_full_build -%}
        {{ send_identity_everything(['int_identifiers_guarded', 'int_identity_edges_built']) }};
        -- nothing for the post-hook to compare
        create temporary table {{ changes }} (record_id text) on commit drop;
        create temporary table int_record_links_before (record_id text, linked_record_id text, link_type text)
        on commit drop
    {%- endset -%}
    {{ identity_mail_lock(shared=true) }};
    {{ receive_identity_changes('int_record_links_mail') }};
    {{ incremental_changes(
        changes,
        interaction_raw_tables() + ['phone_system__dispositions', 'sftp_call_center__dispositions'],
        'record_id', interaction_record_id(), extra_sql,
        before_delete, on_full_build
    ) }}
{% endmacro %}

{#- The post-hook of int_record_links_unioned: the links of the owners rewritten before, compared with their links
    now. int_identifiers_guarded is told (whatever the links' type: the guard reads neighbours) both ends of each
    link gone (records that dropped something: judged again) and each new link (record_id, 'link',
    linked_record_id: merged into what the guard keeps); int_identity_edges_built the owners whose links, with
    their type, changed (their link edges are drawn again). -#}
{% macro int_record_links_written() %}
    create temporary table int_record_links_after on commit drop as
    select distinct record_id, linked_record_id, link_type from {{ this }}
    where record_id = any(array(select record_id from int_record_links_changed));
    insert into intermediate.identity_changes (reader, record_id, identifier_type, identifier_value)
    with
    after as (
        select distinct record_id, linked_record_id from int_record_links_after
    ),
    before_ as (
        select distinct record_id, linked_record_id from int_record_links_before
    ),
    added as (
        select * from after
        except
        select * from before_
    ),
    dropped as (
        select * from before_
        except
        select * from after
    ),
    -- the owners whose links (of any type) changed: int_identity_edges_built draws their link edges again
    owners as (
        select record_id from (
            select * from int_record_links_after
            except
            select * from int_record_links_before
        ) as taken
        union
        select record_id from (
            select * from int_record_links_before
            except
            select * from int_record_links_after
        ) as gone
    )
    select 'int_identifiers_guarded', ends.record_id, null, null
    from dropped
    cross join lateral (values (dropped.record_id), (dropped.linked_record_id)) as ends (record_id)
    union
    select 'int_identifiers_guarded', record_id, 'link', linked_record_id from added
    union
    select 'int_identity_edges_built', record_id, null, null from owners
{% endmacro %}
