"""The hostname Airflow records for a task instance (`[core] hostname_callable`). Several workers on one
machine (local scale-out tests, or containers sharing a host network) set `CRM_WORKER_NAME` so that each
task shows which worker ran it; otherwise the machine's fully qualified name, as Airflow's default."""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("CRM_WORKER_NAME") or socket.getfqdn()
