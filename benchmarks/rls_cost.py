"""What row-level security (migration 0006) costs PostgreSQL: the same statements with and without the policies.

For a database made by ``benchmarks/generate.py``: the region dashboard, compiled into its one statement as
the service sends it, and plain scans of the largest tenant tables, each run with ``EXPLAIN ANALYZE`` as the
owner (a superuser: no policy applies) and as the non-owner application role (``--role``, granted here if
needed) bound to the caller's organisation and region, and to the organisation alone (``*``). Prints the
execution time of each (the median of ``--repeat`` runs), and with ``--plans`` the plans themselves. The
dashboard statement binds its own tenant (``tenancy.bound_read``: the benchmark caller's organisation and
region) whatever the session says, so its two app-role columns measure the same binding.

    python -m benchmarks.rls_cost --database programme_bench [--role programme_app_test] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from typing import Any

import asyncpg
from graphql import parse
from sqlalchemy.dialects import postgresql

from programme_api.schema import schema, sqljson
from programme_api.schema.compiled import QueryOperation

from .generate import ADMIN_DSN, with_database
from .serve_app import bench_principal
from .shared import DASHBOARD_QUERY, find_caller

SCANS = {
    "attendance count": "SELECT count(*) FROM attendance",
    "sessions of the region's groups": "SELECT count(*) FROM group_sessions s JOIN groups g ON g.id = s.group_id",
    "participants count": "SELECT count(*) FROM participants",
}


def dashboard_sql(caller: Any) -> str:
    principal = bench_principal(caller)
    query = QueryOperation.of(parse(DASHBOARD_QUERY), DASHBOARD_QUERY, None, None)
    assert query is not None
    return sqljson._build(postgresql.dialect(), principal, schema, query).sql


async def timed(connection: asyncpg.Connection, sql: str, repeat: int, show: bool) -> float:
    times = []
    for _ in range(repeat):
        async with connection.transaction():
            plan = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        document = json.loads(plan)[0]
        times.append(document["Execution Time"])
    if show:
        async with connection.transaction():
            rows = await connection.fetch(f"EXPLAIN ANALYZE {sql}")
        print("\n".join(row[0] for row in rows))
    return statistics.median(times)


async def main(database: str, role: str, repeat: int, show: bool) -> None:
    connection = await asyncpg.connect(with_database(ADMIN_DSN, database))
    try:
        caller = await find_caller(connection)
        await connection.execute("SET jit = off")  # as the service's connections run (db.py)
        await connection.execute(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
            f"GRANT USAGE ON SCHEMA public TO {role};"
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}"
        )
        bind = (
            "SELECT set_config('app.organisation_id', '{org}', false), set_config('app.region_ids', '{regions}', false)"
        )
        statements = {"region dashboard (one compiled statement)": dashboard_sql(caller), **SCANS}
        cases = {
            "owner (no policy)": ["RESET ROLE"],
            "app role, organisation + region": [
                f"SET ROLE {role}",
                bind.format(org=caller.organisation_id, regions=caller.region_id),
            ],
            "app role, organisation, every region": [
                f"SET ROLE {role}",
                bind.format(org=caller.organisation_id, regions="*"),
            ],
        }
        print(f"{'statement':<45} " + " ".join(f"{name:>36}" for name in cases))
        for label, sql in statements.items():
            figures = []
            for setup in cases.values():
                for command in setup:
                    await connection.execute(command)
                figures.append(await timed(connection, sql, repeat, show))
                await connection.execute("RESET ROLE")
            print(f"{label:<45} " + " ".join(f"{figure:>33.1f} ms" for figure in figures))
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="programme_bench")
    parser.add_argument("--role", default="programme_app_test")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plans", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.database, arguments.role, arguments.repeat, arguments.plans))
