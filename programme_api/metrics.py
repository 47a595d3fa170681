"""The service's Prometheus metrics, defined once for every layer that records them (served by ``web/metrics``).

Kept apart from the web layer so the database layer can time its pool without importing HTTP code.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "programme_api_requests_total", "HTTP requests by route and status.", ["route", "method", "status"],
    registry=REGISTRY,
)  # fmt: skip
GRAPHQL_READS = Counter(
    "programme_api_graphql_reads",
    "GraphQL query operations by the path that answered them: one compiled statement, or the resolvers.",
    ["path"],
    registry=REGISTRY,
)
DATABASE_READS = Counter(
    "programme_api_database_reads",
    "Read-only units of work (GraphQL queries, exports) by the server that answered them: primary or replica.",
    ["server"],
    registry=REGISTRY,
)
DEPRECATED_USES = Counter(
    "programme_api_deprecated_field_uses",
    "Operations that used a deprecated field or enum value, by OAuth client and member: who still relies on "
    "what before it is removed.",
    ["client", "member"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "programme_api_request_seconds", "Time to answer HTTP requests, by route.", ["route"], registry=REGISTRY
)
OPERATIONS = Histogram(
    "programme_api_graphql_operation_seconds",
    "Time to answer GraphQL operations, by operation type and name (names over 64 characters are cut).",
    ["type", "name"],
    registry=REGISTRY,
)
STATEMENTS = Histogram(
    "programme_api_sql_statements_per_request",
    "SQL statements one HTTP request sent to the database.",
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89),
    registry=REGISTRY,
)
POOL_IN_USE = Gauge(
    "programme_api_pool_connections_in_use",
    "Database connections checked out of the pools, summed over live workers.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
POOL_WAIT = Histogram(
    "programme_api_pool_wait_seconds",
    "Time a request waited for a database connection from the pool.",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
    registry=REGISTRY,
)
TOKENS_ISSUED = Counter(
    "programme_api_tokens_issued", "Access tokens issued, by grant type.", ["grant"], registry=REGISTRY
)
EXPORT_ROWS = Counter("programme_api_export_rows", "Rows streamed by evaluator exports, by format.", ["format"],
                      registry=REGISTRY)  # fmt: skip
EXPORT_BYTES = Counter("programme_api_export_bytes", "Bytes streamed by evaluator exports, by format.", ["format"],
                       registry=REGISTRY)  # fmt: skip
