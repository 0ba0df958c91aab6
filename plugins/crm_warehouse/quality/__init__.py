"""The quality gate (write, audit, publish): Great Expectations suites from `expectations/`, run against the
raw landings and the marts dbt built in `marts_build`; publishing into `marts` only when no critical check
failed. Entry points: `gate.run_gate`, `publish.publish`, `publish.audit_and_publish`, `notify`."""
