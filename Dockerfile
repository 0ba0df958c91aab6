# The CRM Warehouse image: Airflow, dbt, Great Expectations and the project, installed from uv.lock.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/crm/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=false \
    GX_ANALYTICS_ENABLED=false \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DO_NOT_TRACK=1 \
    CRM_HOME=/opt/airflow/crm \
    CRM_DBT_PROJECT_DIR=/opt/crm/dbt_project

RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.9 \
    && useradd --create-home --uid 50000 airflow

WORKDIR /opt/crm
# dependencies first (cached layer), exactly as pinned in the lock file
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY plugins ./plugins
COPY sandbox ./sandbox
COPY dags ./dags
COPY dbt_project ./dbt_project
COPY expectations ./expectations
RUN uv sync --frozen --no-dev \
    && CRM_PG_HOST=localhost dbt parse --project-dir dbt_project --profiles-dir dbt_project --quiet \
    && mkdir -p /opt/airflow/crm && chown -R airflow /opt/airflow /opt/crm/dbt_project

USER airflow
