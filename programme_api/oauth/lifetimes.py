"""How long credentials live. Short access tokens bound the damage of a leak; revocation covers the rest.

Authlib's defaults (10-day access tokens, codes without a stated bound) are replaced by these numbers
everywhere a lifetime is decided.
"""

from __future__ import annotations

from datetime import timedelta

#: Access tokens issued for a person (authorization code, refresh) or to a browser/public client.
PERSON_ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
#: Access tokens a machine client obtains for itself (client credentials).
MACHINE_ACCESS_TOKEN_LIFETIME = timedelta(minutes=60)
#: The longest an access token can live: signing keys are published at least this long after retirement.
MAX_ACCESS_TOKEN_LIFETIME = max(PERSON_ACCESS_TOKEN_LIFETIME, MACHINE_ACCESS_TOKEN_LIFETIME)
#: Authorization codes are single-use and short (60 s).
AUTHORIZATION_CODE_LIFETIME = timedelta(seconds=60)
#: A refresh token not used within this time expires; each rotation starts a new period...
REFRESH_TOKEN_IDLE_LIFETIME = timedelta(hours=24)
#: ...but a family (one sign-in and its rotations) never outlives this: then the person signs in again.
REFRESH_FAMILY_LIFETIME = timedelta(days=30)
#: Clock difference tolerated between workers when checking ``exp``/``iat``.
CLOCK_SKEW = timedelta(seconds=30)
#: How long a signed-in browser session (the /login cookie) lasts.
SIGN_IN_SESSION_LIFETIME = timedelta(hours=8)
