"""The OAuth 2 authorization server and resource server.

authlib supplies the protocol machinery (grants, endpoints, client authentication); this package supplies
storage, policy (lifetimes, PKCE S256 for everyone, refresh rotation with reuse detection, scope limits) and
one Starlette adapter (``server.py``). ``resource.authenticate`` turns a bearer token into a ``Principal``.
"""
