"""Static checks of the dbt project's conventions (STYLE.md, dbt part): no database needed."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml

DBT = Path(__file__).resolve().parents[2] / "dbt_project"
MODELS = DBT / "models"


def model_files() -> dict[str, Path]:
    return {p.stem: p for p in MODELS.rglob("*.sql")}


def documented_models() -> dict[str, tuple[Path, dict]]:
    found = {}
    for path in MODELS.rglob("_*__models.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            found[model["name"]] = (path, model)
    return found


def test_source_appears_only_in_staging():
    for name, path in model_files().items():
        text = path.read_text()
        uses_source = "source(" in text or "raw_source(" in text
        assert uses_source == (path.relative_to(MODELS).parts[0] == "staging"), name


def test_staging_models_are_source_renamed_select():
    for name, path in model_files().items():
        if not name.startswith("stg_"):
            continue
        text = path.read_text()
        assert re.search(r"^source as \(", text, re.M), name
        assert re.search(r"^renamed as \(", text, re.M), name
        assert text.rstrip().endswith("select * from renamed"), name
        assert " join " not in text, f"{name}: no joins in staging"


def test_every_model_is_documented_next_to_it_with_its_grain():
    docs = documented_models()
    files = model_files()
    assert set(docs) == set(files), set(docs) ^ set(files)
    for name, (yml, model) in docs.items():
        assert yml.parent == files[name].parent, f"{name} is documented in another folder"
        assert model["description"].startswith("One row per"), name
        assert model.get("columns"), f"{name} lists no columns"
        assert all(c.get("description") for c in model["columns"]), name


def test_names_carry_the_layer():
    for name, path in model_files().items():
        layer = path.relative_to(MODELS).parts[0]
        prefixes = {"staging": ("stg_",), "intermediate": ("int_",), "marts": ("dim_", "fct_")}[layer]
        assert name.startswith(prefixes), name


def test_keys_are_tested_unique_and_not_null():
    docs = documented_models()
    keys = {
        "dim_customers": "customer_id", "fct_interactions": "interaction_id", "fct_complaints": "complaint_id",
        "fct_survey_feedback": "survey_response_id", "fct_service_quality_daily": "service_quality_day_id",
        "int_customer_ids_assigned": "record_id", "int_customer_merges": "merge_event_id",
        "int_interactions_unioned": "record_id", "int_complaint_candidates_unioned": "complaint_id",
    }
    for model, key in keys.items():
        column = next(c for c in docs[model][1]["columns"] if c["name"] == key)
        assert {"unique", "not_null"} <= {t if isinstance(t, str) else next(iter(t))
                                         for t in column.get("data_tests", [])}, model


def test_profile_reads_the_environment_with_the_agreed_defaults():
    profile = yaml.safe_load((DBT / "profiles.yml").read_text())["crm_warehouse"]
    assert profile["target"] == "crm"
    out = profile["outputs"]["crm"]
    assert out["threads"] == 2 and out["type"] == "postgres"
    for key, var, default in [("host", "CRM_PG_HOST", "127.0.0.1"), ("port", "CRM_PG_PORT", "5432"),
                              ("user", "CRM_PG_USER", "postgres"), ("password", "CRM_PG_PASSWORD", ""),
                              ("dbname", "CRM_PG_DBNAME", "crm")]:
        assert f"env_var('{var}', '{default}')" in str(out[key]), key


def test_web_forms_seed_matches_the_contract():
    rows = {r["form_id"]: r["form_kind"] for r in csv.DictReader((DBT / "seeds" / "web_forms.csv").open())}
    assert rows == {"cNtAcT01": "contact", "cMpLnT01": "complaint", "fEeDbK01": "feedback", "cAlLbK01": "callback"}


def test_every_raw_stream_of_the_contract_is_a_source():
    tables = set()
    for path in MODELS.rglob("_*__sources.yml"):
        for source in yaml.safe_load(path.read_text())["sources"]:
            tables |= {f"{source.get('schema', source['name'])}.{t['name']}" for t in source["tables"]}
    contract = (DBT.parent / "docs" / "CONTRACTS.md").read_text()
    streams = set(re.findall(r"`(raw\.[a-z_]+__[a-z_]+)`", contract))
    assert streams and streams <= tables, streams - tables
    assert {"intermediate.phone_numbers_normalized", "intermediate.social_sentiment"} <= tables


def test_dbt_env_gives_the_profile_the_warehouse_of_a_url_or_conninfo():
    from crm_warehouse.settings import dbt_env

    env = dbt_env("postgresql://bi%40ops:p%2Fss@db.example:6543/crm_prod", base={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "CRM_PG_HOST": "db.example", "CRM_PG_PORT": "6543", "CRM_PG_USER": "bi@ops",
                   "CRM_PG_PASSWORD": "p/ss", "CRM_PG_DBNAME": "crm_prod",
                   "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    # what the profile defaults to when the URL leaves a part out
    env = dbt_env("host=10.0.0.5 dbname=warehouse", base={})
    assert (env["CRM_PG_HOST"], env["CRM_PG_PORT"], env["CRM_PG_USER"], env["CRM_PG_PASSWORD"],
            env["CRM_PG_DBNAME"]) == ("10.0.0.5", "5432", "postgres", "", "warehouse")
