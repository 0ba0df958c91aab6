"""CRM Warehouse: extract customer touchpoints from every channel into PostgreSQL, resolve one
customer and one complaint record with dbt, and publish audited marts to BI."""

__version__ = "0.1.0"
