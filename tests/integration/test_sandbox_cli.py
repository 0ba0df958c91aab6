"""`python -m sandbox up`: generates a world, serves every vendor, prints endpoints and credentials, stops on
Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def test_sandbox_up_json_serves_until_interrupted(tmp_path):
    world = tmp_path / "world"
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "up", "--world", str(world), "--customers", "200",
                             "--days", "3", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.rstrip() == "}":
                break
        info = json.loads("".join(lines))
        assert (world / "world.db").exists()
        assert set(info["ports"]) >= {"twilio", "typeform", "qualtrics", "x", "facebook", "linkedin", "sftp",
                                      "admin"}
        ps = info["connections"]["phone_system"]
        r = requests.get(f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json",
                         auth=(ps["login"], ps["password"]), timeout=10)
        assert r.status_code == 200 and r.json()["calls"]
        assert info["connections"]["survey_vendor_sftp"]["extra"]["host_key"].startswith("ssh-ed25519 ")
        r = requests.post(info["admin"] + "/clock", json={"clock": "2026-09-02T00:00:00Z"}, timeout=5)
        assert r.json()["clock"].startswith("2026-09-02")
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=20)
    assert rc == 0, proc.stderr.read()
