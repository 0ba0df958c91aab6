"""The shared HTTP client: auth, timeouts, retries with backoff and jitter, rate limits, paginators."""

from crm_warehouse.http.client import HttpClient, Page, shared_session
from crm_warehouse.http.errors import (
    AuthError,
    HttpSourceError,
    InsecureTransport,
    MalformedResponse,
    RateLimitDeferred,
    RetriesExhausted,
)
from crm_warehouse.http.paginators import (
    ItemTokenPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Paginator,
    Request,
    SinglePage,
    TokenParamPaginator,
    json_path,
)
from crm_warehouse.http.policy import Decision, RetryPolicy, facebook_error_code, rate_limit_wait

__all__ = [
    "AuthError",
    "Decision",
    "HttpClient",
    "HttpSourceError",
    "InsecureTransport",
    "ItemTokenPaginator",
    "MalformedResponse",
    "NextUrlPaginator",
    "OffsetPaginator",
    "Page",
    "Paginator",
    "RateLimitDeferred",
    "Request",
    "RetriesExhausted",
    "RetryPolicy",
    "SinglePage",
    "TokenParamPaginator",
    "facebook_error_code",
    "json_path",
    "rate_limit_wait",
    "shared_session",
]
