-- Schemas and least-privilege roles of the warehouse. Idempotent; run by `crm_warehouse.bootstrap`.
-- crm_loader writes raw and ops; crm_transformer reads raw, owns staging/intermediate/marts*;
-- bi_reader reads the published marts and nothing else.
do $$
begin
    if not exists (select from pg_roles where rolname = 'crm_loader') then
        create role crm_loader nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'crm_transformer') then
        create role crm_transformer nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'bi_reader') then
        create role bi_reader login;
    end if;
end
$$;

create schema if not exists raw;
create schema if not exists ops;
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists snapshots;
create schema if not exists marts_build;
create schema if not exists marts;
create schema if not exists quality;

revoke all on schema raw, ops, staging, intermediate, snapshots, marts_build, quality from public;
revoke create on schema public from public;

grant usage, create on schema raw, ops to crm_loader;
grant usage on schema raw to crm_transformer;
grant usage, create on schema staging, intermediate, snapshots, marts_build, marts, quality to crm_transformer;
grant select on all tables in schema raw to crm_transformer;
alter default privileges in schema raw grant select on tables to crm_transformer;
-- raw tables are created by the loader itself (ensure_raw_table), so its own defaults must grant too
alter default privileges for role crm_loader in schema raw grant select on tables to crm_transformer;

grant usage on schema marts to bi_reader;
grant select on all tables in schema marts to bi_reader;
alter default privileges in schema marts grant select on tables to bi_reader;
alter default privileges for role crm_transformer in schema marts grant select on tables to bi_reader;

-- Row count of a table named at run time, or null when it does not exist (the quality gate's
-- "build not shrunk vs published" guard). The name is resolved by to_regclass, so it cannot inject SQL.
create or replace function quality.row_count(table_name text) returns bigint
language plpgsql stable as $$
declare
    relation regclass := to_regclass(table_name);
    n bigint;
begin
    if relation is null then
        return null;
    end if;
    execute format('select count(*) from %s', relation) into n;
    return n;
end
$$;
