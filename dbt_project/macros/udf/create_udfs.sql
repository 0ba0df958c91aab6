{#-
    Helper functions in schema `intermediate`, created once per version (checked by a comment on the
    sentinel function), under an advisory lock so parallel dbt invocations (Cosmos runs one per model)
    do not race on `create or replace function`. Bump `udf_version` when a body changes.
-#}
{% macro create_udfs() %}
{%- set udf_version = 'crm_warehouse udf v5' -%}
do $crm_udfs$
begin
    perform pg_advisory_xact_lock(hashtext('crm_warehouse.udfs'));
    if coalesce(obj_description(to_regprocedure('intermediate.crm_connected_components(regclass)'), 'pg_proc'), '')
        = '{{ udf_version }}' then
        return;
    end if;

    -- text -> timestamptz, null when the text is not a timestamp (RFC 2822, ISO 8601, CSV spellings).
    -- Text without an offset is read as UTC.
    create or replace function intermediate.crm_try_timestamptz(v text) returns timestamptz
    language plpgsql stable set timezone = 'UTC' as $f$
    begin
        if v is null or btrim(v) = '' then return null; end if;
        return btrim(v)::timestamptz;
    exception when others then
        return null;
    end
    $f$;

    -- text -> numeric, null when the text is not a number ("12", " -0.0130 ", "1e3"; not "n/a").
    create or replace function intermediate.crm_try_numeric(v text) returns numeric
    language sql immutable as $f$
        select case when btrim(v) ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'
                    then btrim(v)::numeric end
    $f$;

    -- a comparable key for a person's name: lower-case alphabetic tokens (2+ letters), sorted, distinct,
    -- without caller-id filler words. "LEE, ANN" and "Ann Lee" give "ann lee".
    create or replace function intermediate.crm_name_key(v text) returns text
    language sql immutable as $f$
        select nullif(array_to_string(array(
            select distinct t
            from regexp_split_to_table(lower(coalesce(v, '')), '[^[:alpha:]]+') as t
            where length(t) > 1
              and t not in ('wireless', 'caller', 'unknown', 'unavailable', 'private', 'name', 'anonymous')
            order by t), ' '), '')
    $f$;

    -- inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)
    create or replace function intermediate.crm_norm_inv(p double precision) returns double precision
    language plpgsql immutable as $f$
    declare
        a double precision[] := array[-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00];
        b double precision[] := array[-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                      6.680131188771972e+01, -1.328068155288572e+01];
        c double precision[] := array[-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00];
        d double precision[] := array[7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                      3.754408661907416e+00];
        q double precision;
        r double precision;
    begin
        if p is null or p <= 0 or p >= 1 then return null; end if;
        if p < 0.02425 then
            q := sqrt(-2 * ln(p));
            return (((((c[1]*q + c[2])*q + c[3])*q + c[4])*q + c[5])*q + c[6])
                 / ((((d[1]*q + d[2])*q + d[3])*q + d[4])*q + 1);
        elsif p > 1 - 0.02425 then
            q := sqrt(-2 * ln(1 - p));
            return -(((((c[1]*q + c[2])*q + c[3])*q + c[4])*q + c[5])*q + c[6])
                  / ((((d[1]*q + d[2])*q + d[3])*q + d[4])*q + 1);
        end if;
        q := p - 0.5;
        r := q * q;
        return (((((a[1]*r + a[2])*r + a[3])*r + a[4])*r + a[5])*r + a[6])*q
             / (((((b[1]*r + b[2])*r + b[3])*r + b[4])*r + b[5])*r + 1);
    end
    $f$;

    -- Connected components of an undirected graph given as a relation with text columns
    -- (node_a, node_b); a row (x, x) declares an isolated node. Returns every node with the smallest
    -- node (C collation) of its component. Nodes are numbered in a temp table, then union-find with
    -- path halving runs over an in-memory integer array (expanded array: O(1) element updates);
    -- the root is always the smallest id, so one ascending pass flattens every node to its root.
    -- 1M records with 2.1M edges take about 9 s on 2 cores (3.5 s of it numbering the text ids).
    create or replace function intermediate.crm_connected_components(edges regclass)
    returns table (node text, component text)
    language plpgsql set work_mem = '128MB' as $f$
    declare
        parent integer[];
        nodes_count integer;
        a integer;
        b integer;
        edge record;
    begin
        drop table if exists pg_temp._cc_nodes;
        execute format(
            'create temp table _cc_nodes on commit drop as
             select name, (row_number() over (order by name collate "C"))::integer as id
             from (select node_a as name from %1$s union select node_b from %1$s) as n
             where name is not null', edges);
        select count(*) into nodes_count from _cc_nodes;
        parent := array(select g from generate_series(1, nodes_count) as g);
        for edge in execute format(
            'select a.id as src, b.id as dst
             from %1$s as e
             inner join _cc_nodes as a on a.name = e.node_a
             inner join _cc_nodes as b on b.name = e.node_b
             where a.id <> b.id', edges)
        loop
            a := edge.src;
            while parent[a] <> a loop
                parent[a] := parent[parent[a]];
                a := parent[a];
            end loop;
            b := edge.dst;
            while parent[b] <> b loop
                parent[b] := parent[parent[b]];
                b := parent[b];
            end loop;
            if a < b then
                parent[b] := a;
            elsif b < a then
                parent[a] := b;
            end if;
        end loop;
        for i in 1 .. nodes_count loop
            parent[i] := parent[parent[i]];
        end loop;
        return query
            select n.name, r.name
            from unnest(parent) with ordinality as p(root, id)
            inner join _cc_nodes as n on n.id = p.id
            inner join _cc_nodes as r on r.id = p.root;
    end
    $f$;

    -- Union-find over integer nodes 1..nodes_count and the edges (sources[i], targets[i]): returns, per
    -- node, the smallest node of its component (parent array; path halving; the root is always the
    -- smallest id, so one ascending pass flattens every node to its root). The caller numbers its nodes
    -- in the order it wants the representative chosen by. About 1M edges a second on one core.
    create or replace function intermediate.crm_union_find(nodes_count integer, sources integer[], targets integer[])
    returns integer[]
    language plpgsql immutable as $f$
    declare
        parent integer[];
        a integer;
        b integer;
    begin
        parent := array(select g from generate_series(1, nodes_count) as g);
        for i in 1 .. coalesce(array_length(sources, 1), 0) loop
            a := sources[i];
            while parent[a] <> a loop
                parent[a] := parent[parent[a]];
                a := parent[a];
            end loop;
            b := targets[i];
            while parent[b] <> b loop
                parent[b] := parent[parent[b]];
                b := parent[b];
            end loop;
            if a < b then
                parent[b] := a;
            elsif b < a then
                parent[a] := b;
            end if;
        end loop;
        for i in 1 .. nodes_count loop
            parent[i] := parent[parent[i]];
        end loop;
        return parent;
    end
    $f$;

    comment on function intermediate.crm_connected_components(regclass) is '{{ udf_version }}';
end
$crm_udfs$;
{% endmacro %}
