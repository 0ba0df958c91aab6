"""Alerts really leave the process: a webhook receiver and an SMTP server on loopback."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

from crm_warehouse.quality.notify import QualityAlertNotifier, send_alert


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message."""

    messages: list = []

    def handle(self):
        self.wfile.write(b"220 loopback\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 loopback\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                type(self).messages.append(data.decode())
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_notifier_posts_to_the_webhook_and_mails(monkeypatch):
    http = HTTPServer(("127.0.0.1", 0), _Hook)
    smtp = socketserver.TCPServer(("127.0.0.1", 0), _Smtp)
    for server in (http, smtp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{http.server_port}/hook?token=secret")
        monkeypatch.setenv("CRM_ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CRM_ALERT_SMTP_PORT", str(smtp.server_address[1]))
        monkeypatch.setenv("CRM_ALERT_MAIL_TO", "data-team@example.com, oncall@example.com")
        ti = SimpleNamespace(dag_id="transform_warehouse", task_id="quality_gate", run_id="r1")
        error = RuntimeError("Quality gate failed for run r1: 1 critical check failed")
        QualityAlertNotifier()({"ti": ti, "run_id": "r1", "exception": error})
        assert len(_Hook.received) == 1
        payload = _Hook.received[0]
        assert payload["subject"] == "[crm-warehouse] transform_warehouse.quality_gate failed (run r1)"
        assert "1 critical check failed" in payload["text"]
        assert payload["details"]["run_id"] == "r1"
        assert len(_Smtp.messages) == 1
        assert "Subject: [crm-warehouse] transform_warehouse.quality_gate failed (run r1)" in _Smtp.messages[0]
        assert "To: data-team@example.com, oncall@example.com" in _Smtp.messages[0]
    finally:
        http.shutdown()
        smtp.shutdown()


def test_a_failing_webhook_is_logged_without_its_secret(monkeypatch, caplog):
    _Hook.status = 500
    http = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        env = {"CRM_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{http.server_port}/hook?token=s3cr3t"}
        assert send_alert("subject", "body", env=env) == ["log"]
        assert "HTTP 500" in caplog.text and "s3cr3t" not in caplog.text
    finally:
        _Hook.status = 200
        http.shutdown()
