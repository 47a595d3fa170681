"""People's sign-in: success, a failure message that gives nothing away, throttling, CSRF, redirects, logout."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from programme_api.domain.models import AuditEvent, User
from programme_api.oauth.throttle import LocalThrottle, RedisThrottle, throttle_key

from .oauth_support import (
    EXPLORER_REDIRECT,
    ISSUER,
    PASSWORD,
    World,
    app,
    audit_actions,
    authorize_params,
    counts,
    hidden_value,
    pkce_pair,
    redis_client,
    settings,
    sign_in,
    web,
    world,
)

FAILURE = "Email or password is incorrect."


async def failed_sign_ins(db: AsyncSession) -> list[AuditEvent]:
    rows = await db.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed"))
    return list(rows)


async def test_the_sign_in_page_is_plain_html_that_cannot_be_framed(web: httpx.AsyncClient) -> None:
    page = await web.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert hidden_value(page.text, "csrf")


async def test_signing_in_sets_a_protected_session_cookie_and_follows_next(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    response = await sign_in(web, world.people["admin"].email.upper(), next_path="/oauth/authorize?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/oauth/authorize?x=1"
    cookie = next(value for value in response.headers.get_list("set-cookie") if value.startswith("programme_session="))
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=lax" in cookie
    assert "auth.sign_in" in await audit_actions(db, world.org_a.id)


async def test_wrong_password_and_unknown_email_look_the_same_and_are_audited(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    person = world.people["admin"]
    wrong_password = await sign_in(web, person.email, "not the password")
    unknown_email = await sign_in(web, "nobody@example.org", PASSWORD)
    for response in (wrong_password, unknown_email):
        assert response.status_code == 400
        assert FAILURE in response.text
        assert "programme_session=" not in response.headers.get("set-cookie", "")
    assert wrong_password.text.count(FAILURE) == unknown_email.text.count(FAILURE) == 1

    events = await failed_sign_ins(db)
    assert len(events) == 2
    known = next(event for event in events if event.target_id is not None)
    assert known.target_id == str(person.id)
    assert known.organisation_id == person.organisation_id
    unknown = next(event for event in events if event.target_id is None)
    assert unknown.organisation_id is None
    assert "nobody@example.org" not in str(unknown.details)
    assert unknown.details["email_sha256"]


async def test_people_of_two_organisations_sign_in_each_to_their_own(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """An email leads to its own organisation's person (``user_emails``), whichever organisation that is: each
    sign-in, and each failure, is recorded for the person's own organisation and not for the other."""
    for name, organisation in (("admin", world.org_a), ("admin_b", world.org_b)):
        web.cookies.clear()
        person = world.people[name]
        assert (await sign_in(web, person.email)).status_code == 303
        assert (await sign_in(web, person.email, "not the password")).status_code == 400
        signing_in = [action for action in await audit_actions(db, organisation.id) if action.startswith("auth.sign")]
        assert signing_in == ["auth.sign_in", "auth.sign_in_failed"]
        (failure,) = [event for event in await failed_sign_ins(db) if event.target_id == str(person.id)]
        assert failure.organisation_id == organisation.id
    assert {event.organisation_id for event in await failed_sign_ins(db)} == {world.org_a.id, world.org_b.id}


async def test_a_deactivated_person_cannot_sign_in(web: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    await db.execute(sa.update(User).where(User.id == world.people["admin"].id).values(is_active=False))
    await db.commit()
    response = await sign_in(web, world.people["admin"].email)
    assert response.status_code == 400
    assert FAILURE in response.text


async def test_repeated_failures_are_throttled_per_email_and_address(
    app: Starlette, web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    person = world.people["coordinator"]
    for _ in range(5):
        assert (await sign_in(web, person.email, "guess")).status_code == 400
    throttled = await sign_in(web, person.email)  # even the right password waits now
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert "Too many failed sign-in attempts" in throttled.text
    assert "programme_session=" not in throttled.headers.get("set-cookie", "")
    reasons = [event.details["reason"] for event in await failed_sign_ins(db)]
    assert reasons.count("bad_credentials") == 5
    assert reasons.count("throttled") == 1

    other_person = await sign_in(web, world.people["admin"].email)
    assert other_person.status_code == 303
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as elsewhere:
        assert (await sign_in(elsewhere, person.email)).status_code == 303


async def test_a_success_clears_earlier_failures(web: httpx.AsyncClient, world: World) -> None:
    person = world.people["coordinator"]
    for _ in range(4):
        await sign_in(web, person.email, "guess")
    assert (await sign_in(web, person.email)).status_code == 303
    for _ in range(4):
        assert (await sign_in(web, person.email, "guess")).status_code == 400


async def test_sign_in_without_the_form_token_is_refused(
    web: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await web.get("/login")
    before = await counts(db)
    for csrf in ("", "forged"):
        response = await web.post(
            "/login", data={"email": world.people["admin"].email, "password": PASSWORD, "csrf": csrf}
        )
        assert response.status_code == 400
        assert "programme_session=" not in response.headers.get("set-cookie", "")
    assert await counts(db) == before


@pytest.mark.parametrize(
    "next_path", ["https://evil.test/", "//evil.test/", "/\\evil.test", "javascript:alert(1)", "graphql"]
)
async def test_next_never_leaves_the_site(web: httpx.AsyncClient, world: World, next_path: str) -> None:
    response = await sign_in(web, world.people["admin"].email, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/graphql"


async def test_logout_ends_the_session(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, world.people["admin"].email)
    _, challenge = pkce_pair()
    params = authorize_params("programme-explorer", EXPLORER_REDIRECT, challenge)
    assert (await web.get("/oauth/authorize", params=params)).status_code == 302
    out = await web.get("/logout")
    assert out.status_code == 200
    assert "signed out" in out.text
    after = await web.get("/oauth/authorize", params=params)
    assert after.status_code == 303
    assert after.headers["location"].startswith("/login")


async def test_a_tampered_session_cookie_counts_as_signed_out(web: httpx.AsyncClient, world: World) -> None:
    await sign_in(web, world.people["admin"].email)
    value = web.cookies["programme_session"]
    web.cookies.set(
        "programme_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), domain="programme.test"
    )
    _, challenge = pkce_pair()
    response = await web.get(
        "/oauth/authorize", params=authorize_params("programme-explorer", EXPLORER_REDIRECT, challenge)
    )
    assert response.status_code == 303


async def test_what_people_type_is_escaped(web: httpx.AsyncClient) -> None:
    page = await web.get("/login")
    response = await web.post(
        "/login",
        data={"email": '"><script>alert(1)</script>', "password": "x", "csrf": hidden_value(page.text, "csrf")},
    )
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


# --- the throttle itself -----------------------------------------------------------------------------------


async def test_local_throttle_counts_within_a_window() -> None:
    now = [1000.0]
    throttle = LocalThrottle(max_failures=3, window_seconds=60, clock=lambda: now[0])
    key = throttle_key("A@Example.org ", "10.0.0.1")
    assert key == throttle_key("a@example.org", "10.0.0.1")
    for _ in range(3):
        assert await throttle.attempt(key) == 0
    assert await throttle.attempt(key) == 60
    now[0] += 59.5
    assert await throttle.attempt(key) == 1
    now[0] += 1
    assert await throttle.attempt(key) == 0  # a new window started
    await throttle.clear(key)


async def test_redis_throttle_is_shared_between_workers(redis_client: Redis) -> None:
    prefix = f"test-{secrets.token_hex(6)}:"
    key = throttle_key(f"{secrets.token_hex(6)}@example.org", "10.0.0.2")
    worker_one = RedisThrottle(redis_client, max_failures=2, window_seconds=30, prefix=prefix)
    worker_two = RedisThrottle(redis_client, max_failures=2, window_seconds=30, prefix=prefix)
    try:
        assert await worker_one.attempt(key) == 0
        assert await worker_two.attempt(key) == 0
        assert 0 < await worker_one.attempt(key) <= 30
        assert await redis_client.get(prefix + key) == b"3"
        await worker_one.clear(key)
        assert await worker_two.attempt(key) == 0
    finally:
        await redis_client.delete(prefix + key)


async def test_redis_throttle_falls_back_to_the_process_when_redis_is_down() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    throttle = RedisThrottle(unreachable, max_failures=1, window_seconds=30)
    key = throttle_key("x@example.org", "10.0.0.3")
    assert await throttle.attempt(key) == 0
    assert await throttle.attempt(key) > 0
    await unreachable.aclose()
