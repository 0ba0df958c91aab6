{#-
    The columns of a Qualtrics response (CONTRACTS section 3), from the JSON export (`values`, with
    camelCase keys) or from a CSV row (column ids). `layout` is 'json' or 'csv'.
-#}
{% macro qualtrics_response_columns(layout) %}
    {%- if layout == 'json' -%}
        {%- set v = "payload->'values'" -%}
        {%- set k = {'start': 'startDate', 'end': 'endDate', 'recorded': 'recordedDate', 'status': 'status',
                     'progress': 'progress', 'duration': 'duration', 'finished': 'finished',
                     'email': 'recipientEmail', 'first': 'recipientFirstName', 'last': 'recipientLastName',
                     'external': 'externalDataReference', 'distribution': 'distributionChannel',
                     'language': 'userLanguage'} -%}
    {%- else -%}
        {%- set v = "payload" -%}
        {%- set k = {'start': 'StartDate', 'end': 'EndDate', 'recorded': 'RecordedDate', 'status': 'Status',
                     'progress': 'Progress', 'duration': 'Duration (in seconds)', 'finished': 'Finished',
                     'email': 'RecipientEmail', 'first': 'RecipientFirstName', 'last': 'RecipientLastName',
                     'external': 'ExternalReference', 'distribution': 'DistributionChannel',
                     'language': 'UserLanguage'} -%}
    {%- endif -%}
        {{ try_timestamptz(v ~ "->>'" ~ k.start ~ "'") }} as started_at,
        {{ try_timestamptz(v ~ "->>'" ~ k.end ~ "'") }} as ended_at,
        {{ try_timestamptz(v ~ "->>'" ~ k.recorded ~ "'") }} as recorded_at,
        {{ try_int(v ~ "->>'" ~ k.status ~ "'") }} as response_type_code,
        {{ try_int(v ~ "->>'" ~ k.progress ~ "'") }} as progress_percent,
        {{ try_int(v ~ "->>'" ~ k.duration ~ "'") }} as duration_seconds,
        coalesce({{ try_bool(v ~ "->>'" ~ k.finished ~ "'") }}, false) as is_finished,
        {{ clean_text(v ~ "->>'" ~ k.email ~ "'") }} as recipient_email_raw,
        {{ canonical_email(v ~ "->>'" ~ k.email ~ "'") }} as email,
        {{ clean_text(v ~ "->>'" ~ k.first ~ "'") }} as first_name,
        {{ clean_text(v ~ "->>'" ~ k.last ~ "'") }} as last_name,
        {{ clean_text(v ~ "->>'" ~ k.external ~ "'") }} as external_reference,
        lower({{ clean_text(v ~ "->>'" ~ k.distribution ~ "'") }}) as distribution_channel,
        {{ clean_text(v ~ "->>'" ~ k.language ~ "'") }} as user_language,
        {{ try_int(v ~ "->>'QID1'") }} as csat_score,
        {{ try_int(v ~ "->>'QID2'") }} as nps_score,
        case {{ try_int(v ~ "->>'QID3'") }} when 1 then true when 2 then false end as has_reported_problem,
        {{ clean_text(v ~ "->>'QID4_TEXT'") }} as problem_description,
        {{ clean_text(v ~ "->>'QID5_TEXT'") }} as required_to_satisfy,
        {{ clean_text(v ~ "->>'QID6_TEXT'") }} as necessary_to_rectify,
        {{ clean_text(v ~ "->>'QID7_TEXT'") }} as how_to_avoid,
        {{ clean_text(v ~ "->>'QID8_TEXT'") }} as phone_raw,
        {{ social_handle(v ~ "->>'QID9_TEXT'") }} as social_handle,
        case coalesce({{ try_int(v ~ "->>'QID10'") }}::text, lower(btrim({{ v }}->>'QID10')))
            when '1' then 'billing' when 'billing' then 'billing'
            when '2' then 'product' when 'product' then 'product'
            when '3' then 'service' when 'service' then 'service'
            when '4' then 'delivery' when 'delivery' then 'delivery'
            when '5' then 'technical' when 'technical' then 'technical'
            when '6' then 'other' when 'other' then 'other'
        end as problem_category
{%- endmacro %}
