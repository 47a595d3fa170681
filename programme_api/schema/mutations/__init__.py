"""Mutations, one module per concept: input types, payloads, and thin resolvers over ``domain``.

Every resolver goes through ``common.perform``: scope check, idempotency, the domain call under the request
lock, and the translation of refusals into typed ``userErrors`` (which also make the edge roll back).
"""
