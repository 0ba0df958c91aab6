"""`crm docs` serves the static sites every transform run builds (dbt docs, Data Docs, the insight report) and
prints their addresses, as a data engineer would open them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests


def test_crm_docs_prints_an_address_per_site_and_serves_each(tmp_path):
    docs = tmp_path / "docs"
    pages = {"dbt": "<html>dbt docs: fct_complaints</html>", "data_docs": "<html>Data Docs</html>",
             "report": "<html>insight report</html>"}
    for name, body in pages.items():
        (docs / name).mkdir(parents=True)
        (docs / name / "index.html").write_text(body)
    crm = str(Path(sys.executable).parent / "crm")
    # crm writes what it tells the user to stderr (rich console), leaving stdout for data
    proc = subprocess.Popen([crm, "docs", "--port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CRM_DOCS_DIR": str(docs), "PYTHONUNBUFFERED": "1",
                                 "COLUMNS": "200"})
    try:
        addresses = {}
        for line in proc.stderr:
            m = re.match(r"\s*(\w+)\s+(http://127\.0\.0\.1:\d+/\w+/)\s*$", line)
            if m:
                addresses[m.group(1)] = m.group(2)
            if "Serving until Ctrl-C" in line:
                break
        assert set(addresses) == set(pages), addresses
        for name, url in addresses.items():
            r = requests.get(url, timeout=10)
            assert r.status_code == 200 and r.text == pages[name], (name, r.status_code)
        assert requests.get(addresses["dbt"] + "missing.html", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_crm_docs_before_any_run_says_how_to_build_them(tmp_path):
    crm = str(Path(sys.executable).parent / "crm")
    out = subprocess.run([crm, "docs", "--port", "0"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CRM_DOCS_DIR": str(tmp_path / "none"), "COLUMNS": "200"})
    assert out.returncode == 1
    assert "make demo" in out.stderr and str(tmp_path / "none") in out.stderr
