"""Publish the static documentation sites a transform run produces."""

from __future__ import annotations

import shutil
from pathlib import Path

from crm_warehouse.settings import docs_dir


def publish_dbt_docs(project_dir: str, **_: object) -> None:
    """Cosmos callback after `dbt docs generate --static`: copy the self-contained page (manifest and
    catalog inlined) to `<docs>/dbt/index.html`, next to the JSON artifacts for other tools."""
    target = Path(project_dir) / "target"
    out = docs_dir() / "dbt"
    out.mkdir(parents=True, exist_ok=True)
    static = target / "static_index.html"
    if not static.exists():
        raise FileNotFoundError(f"dbt docs generate --static wrote no {static}: see the task log above")
    shutil.copyfile(static, out / "index.html")
    for name in ("manifest.json", "catalog.json"):
        if (target / name).exists():
            shutil.copyfile(target / name, out / name)
    print(f"dbt docs published to {out / 'index.html'}")
