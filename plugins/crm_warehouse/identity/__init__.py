"""Normalisation of customer identifiers: phone numbers (phonenumbers) and email addresses.

The email rules live twice on purpose: here (for tests, benchmarks and Python callers) and in the dbt
macro `canonical_email` (dbt_project/macros/identity/canonical_email.sql). Both must agree; the
integration test `test_dbt_pipeline` checks that they do on every email it loads.
"""

from crm_warehouse.identity.emails import canonical_email
from crm_warehouse.identity.phones import NormalizedPhone, normalize_phone

__all__ = ["NormalizedPhone", "canonical_email", "normalize_phone"]
