"""`python -m sandbox up` and `crm sandbox up`: generate a world, serve every vendor, print endpoints and
credentials, stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import paramiko
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _serve(cmd: list[str], env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            break
    try:
        return proc, json.loads("".join(lines))
    except ValueError:
        proc.kill()
        raise AssertionError(f"no JSON from {cmd}: {''.join(lines)} {proc.stderr.read()}") from None


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    # communicate, not wait: it drains both pipes, so a sandbox writing to a full pipe cannot look like one that
    # does not stop, and what it wrote is in the message either way
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # the sandbox dumps every thread's stack (faulthandler) to stderr
        try:
            _, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        stacks = f"; its threads when killed:\n{err[-4000:]}" if err else ""
        raise AssertionError(f"the sandbox did not stop within 20 s of Ctrl-C{stacks}") from None
    assert proc.returncode == 0, err


def test_sandbox_up_json_serves_until_interrupted(tmp_path):
    world = tmp_path / "world"
    proc, info = _serve([sys.executable, "-m", "sandbox", "up", "--world", str(world), "--customers", "200",
                         "--days", "3", "--json"])
    try:
        assert (world / "world.db").exists()
        assert set(info["ports"]) >= {"twilio", "typeform", "qualtrics", "x", "facebook", "linkedin", "sftp",
                                      "admin"}
        ps = info["connections"]["phone_system"]
        assert ps["host"].startswith("http://127.0.0.1:")
        r = requests.get(f"{ps['host']}/2010-04-01/Accounts/{ps['login']}/Calls.json",
                         auth=(ps["login"], ps["password"]), timeout=10)
        assert r.status_code == 200 and r.json()["calls"]
        assert info["connections"]["survey_vendor_sftp"]["extra"]["host_key"].startswith("ssh-ed25519 ")
        r = requests.post(info["admin"] + "/clock", json={"clock": "2026-09-02T00:00:00Z"}, timeout=5)
        assert r.json()["clock"].startswith("2026-09-02")
    finally:
        _stop(proc)


def test_host_listens_everywhere_and_advertise_names_the_host(tmp_path):
    """As docker-compose runs it: every interface, connections named after the service."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    args = shlex.split(compose["services"]["sandbox"]["command"])
    assert args[:3] == ["python", "-m", "sandbox"] and args[args.index("--host") + 1] == "0.0.0.0"
    args = args[3:]
    args[args.index("--world") + 1] = str(tmp_path / "world")
    args[args.index("--advertise") + 1] = "localhost"  # "sandbox" inside the compose network
    proc, info = _serve([sys.executable, "-m", "sandbox", *args, "--customers", "100", "--days", "2"])
    try:
        c = info["connections"]
        assert c["web_forms"]["host"] == f"http://localhost:{info['ports']['typeform']}"
        assert "allow_insecure_http" not in c["web_forms"]["extra"]  # loopback: plain http is allowed anyway
        assert c["survey_vendor_sftp"]["host"] == "localhost"
        wf = c["web_forms"]
        for host in ("127.0.0.1", "localhost"):  # listening on every interface, loopback included
            r = requests.get(f"http://{host}:{info['ports']['typeform']}/forms/cNtAcT01/responses",
                             headers={"Authorization": f"Bearer {wf['password']}"}, timeout=10)
            assert r.status_code == 200
        ps = c["phone_system"]
        page = requests.get(f"{ps['host']}/v1/Accounts/{ps['login']}/Dispositions.json", params={"PageSize": 1},
                            auth=(ps["login"], ps["password"]), timeout=10).json()
        assert page["meta"]["next_page_url"].startswith("http://localhost:")
        sftp = c["survey_vendor_sftp"]
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=sftp["port"], username=sftp["login"], password=sftp["password"],
                       look_for_keys=False, allow_agent=False, timeout=10)
        assert "survey_vendor" in client.open_sftp().listdir("/")
        client.close()
    finally:
        _stop(proc)


def test_crm_sandbox_up_json(tmp_path):
    crm = str(Path(sys.executable).parent / "crm")
    proc, info = _serve([crm, "sandbox", "up", "--json", "--customers", "100", "--days", "2", "--host", "127.0.0.1"],
                        env={"CRM_HOME": str(tmp_path / "home")})
    try:
        assert (tmp_path / "home" / "world" / "world.db").exists()
        x = info["connections"]["social_x"]
        r = requests.get(f"{x['host']}/2/users/{x['extra']['user_id']}/mentions",
                         headers={"Authorization": f"Bearer {x['password']}"}, timeout=10)
        assert r.status_code == 200 and "x-rate-limit-remaining" in r.headers
    finally:
        _stop(proc)


def test_connections_to_a_sandbox_on_a_private_network_allow_plain_http(tmp_path):
    """Advertised under a service name (compose), the sandbox's http:// connections say so explicitly:
    the extractors refuse to send credentials over plain http to anything but loopback otherwise."""
    from sandbox.serve import Sandbox
    from sandbox.world import generate

    generate(tmp_path / "world", seed=3, customers=50, days=1)
    box = Sandbox(tmp_path / "world", sftp=False, advertise="sandbox").start()
    try:
        http = {k: c for k, c in box.connections.items() if c["conn_type"] == "http"}
        assert len(http) == 6
        assert all(c["host"].startswith("http://sandbox:") and c["extra"]["allow_insecure_http"] is True
                   for c in http.values())
    finally:
        box.stop()
