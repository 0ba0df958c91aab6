"""Every HTTP source, by name (the DAGs iterate over this)."""

from __future__ import annotations

from crm_warehouse.sources import (
    phone_system,
    social_facebook,
    social_linkedin,
    social_x,
    survey_vendor,
    web_forms,
)
from crm_warehouse.sources.base import Source

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        phone_system.SOURCE,
        survey_vendor.SOURCE,
        web_forms.SOURCE,
        social_x.SOURCE,
        social_facebook.SOURCE,
        social_linkedin.SOURCE,
    )
}
