"""What the transform DAG's `dbt build` task logs per node, from dbt's run_results.json."""

from __future__ import annotations

import json
import logging

import pytest
from crm_warehouse.orchestration.dbt_build import log_dbt_build_results, summarise_run_results

RUN_RESULTS = {"results": [
    {"unique_id": "model.crm_warehouse.stg_phone_system__calls", "status": "success", "execution_time": 0.412,
     "adapter_response": {"rows_affected": -1}},
    {"unique_id": "seed.crm_warehouse.channels", "status": "success", "execution_time": 0.1,
     "adapter_response": {"rows_affected": 7}},
    {"unique_id": "model.crm_warehouse.fct_complaints", "status": "skipped", "execution_time": 0,
     "adapter_response": {}},
]}


def test_one_row_per_node_with_its_name_type_status_rows_and_seconds():
    rows = summarise_run_results(RUN_RESULTS)
    assert rows == [
        {"node": "stg_phone_system__calls", "type": "model", "status": "success", "rows": -1, "seconds": 0.41},
        {"node": "channels", "type": "seed", "status": "success", "rows": 7, "seconds": 0.1},
        {"node": "fct_complaints", "type": "model", "status": "skipped", "rows": None, "seconds": 0.0},
    ]


def test_the_task_log_names_every_node_and_counts_them(tmp_path, caplog):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "run_results.json").write_text(json.dumps(RUN_RESULTS))
    with caplog.at_level(logging.INFO, logger="crm_warehouse.orchestration.dbt_build"):
        log_dbt_build_results(str(tmp_path))
    text = caplog.text
    for name in ("stg_phone_system__calls", "channels", "fct_complaints"):
        assert name in text
    assert "dbt build: 3 nodes (1 skipped, 2 success)" in text


def test_no_run_results_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run_results.json"):
        log_dbt_build_results(str(tmp_path))
