"""Signing keys: creation (0600, race-safe), rotation with retention, reload by workers, and the JWKS."""

# Fixtures are imported from oauth_support by name, which pyflakes reads as unused imports redefined by arguments.
# ruff: noqa: F401, F811

from __future__ import annotations

import base64
import json
import logging
import stat
import threading
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from programme_api.config import Settings
from programme_api.domain.models import utcnow
from programme_api.oauth import keys
from programme_api.oauth.errors import AuthenticationError
from programme_api.oauth.keys import KEY_RETENTION_SECONDS, KeyFileError, KeyRing, load_or_create, rotate
from programme_api.oauth.lifetimes import MAX_ACCESS_TOKEN_LIFETIME
from programme_api.oauth.tokens import TokenIssuer, resource_identifier
from programme_api.oauth.validation import verify_access_token

from .oauth_support import ISSUER, World, app, bearer, client_credentials, settings, web, world


def issue(ring: KeyRing) -> str:
    issued = TokenIssuer(ISSUER, ring).issue(
        client_id="c",
        subject="c",
        scope="programme:read",
        lifetime=MAX_ACCESS_TOKEN_LIFETIME,
        now=utcnow(),
        with_refresh_token=False,
    )
    return issued.access_token


def verify(ring: KeyRing, token: str) -> str:
    return verify_access_token(token, ring, issuer=ISSUER, audience=resource_identifier(ISSUER)).jti


def test_the_key_file_is_created_once_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "keys.json"
    created = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert len(document["keys"]) == 1
    assert document["keys"][0]["jwk"]["crv"] == "P-256"
    again = load_or_create(path)
    assert again.current.kid == created.current.kid
    assert again.session_secret == created.session_secret
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary files left behind


def test_workers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kids: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        kids.append(load_or_create(path).current.kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(json.loads(path.read_text())["keys"]) == 1


def test_a_broken_or_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="not a valid key file"):
        load_or_create(path)
    path.write_text(json.dumps({"version": 1, "session_secret": "s" * 40, "keys": []}))
    with pytest.raises(KeyFileError, match="no usable private key"):
        load_or_create(path)


def test_a_key_file_readable_by_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "keys.json"
    load_or_create(path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_or_create(path)
    assert "chmod 600" in caplog.text


def test_rotation_keeps_the_old_key_until_its_tokens_have_expired(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    now = [1_800_000_000.0]
    ring = KeyRing(path, reload_interval=0, clock=lambda: now[0])
    old_kid = ring.signing_key().kid
    old_token = issue(ring)

    added, _ = rotate(path, now=now[0])
    assert ring.signing_key().kid == added.kid != old_kid  # picked up without a restart
    assert [key["kid"] for key in ring.jwks()["keys"]] == [added.kid, old_kid]
    assert verify(ring, old_token)
    assert verify(ring, issue(ring))
    assert MAX_ACCESS_TOKEN_LIFETIME.total_seconds() <= KEY_RETENTION_SECONDS

    now[0] += KEY_RETENTION_SECONDS + 1
    assert [key["kid"] for key in ring.jwks()["keys"]] == [added.kid]
    with pytest.raises(AuthenticationError, match="unknown key"):
        verify(ring, old_token)

    newest, kept = rotate(path, now=now[0])
    assert [key.kid for key in kept.keys] == [added.kid, newest.kid]  # the expired key is gone from the file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_worker_keeps_its_keys_when_the_file_is_broken_later(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path, reload_interval=0)
    kid = ring.signing_key().kid
    path.write_text("garbage that is longer than before")
    assert ring.signing_key().kid == kid


async def test_rotation_through_the_service_publishes_both_keys_and_old_tokens_still_work(
    app: Starlette, web: httpx.AsyncClient, world: World, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "RELOAD_INTERVAL_SECONDS", 0)
    old = (await client_credentials(web, world.clients["machine"])).json()["access_token"]
    old_kid = (await web.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]

    added, _ = rotate(settings.secret_key_file)

    published = [key["kid"] for key in (await web.get("/.well-known/jwks.json")).json()["keys"]]
    assert published == [added.kid, old_kid]
    assert (await web.get("/_probe", headers=bearer(old))).status_code == 200
    new = (await client_credentials(web, world.clients["machine"])).json()["access_token"]
    assert (await web.get("/_probe", headers=bearer(new))).status_code == 200
    header = json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))
    assert header["kid"] == added.kid
