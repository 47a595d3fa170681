"""One SQL compiler for reads: a validated query becomes ONE statement that builds the response's ``data``
JSON in the database (PostgreSQL ``json_build_object``/``json_agg``, SQLite ``json_object``/
``json_group_array``), with every caller value a bind parameter.

| module | what |
|---|---|
| ``policy.py`` | the declared field table: how each field is read, its scope, whether its read is audited; the
  refusal of fields with permission classes or extensions it does not declare |
| ``operation.py`` | the operation: fragments, coerced variables, selected fields, the structure of variables |
| ``params.py`` | parameter slots: values supplied per request to a statement compiled once |
| ``dialect.py`` | the two databases' JSON functions and renderings (global IDs, cursors, timestamps) |
| ``build.py`` | the statement: objects, references, children, computed fields, connections, ``node(id)`` |
| ``page.py`` | a keyset page of a connection: cursors, ``pageInfo``, the paging arguments checked per request |
| ``route.py`` | the one decision (compiled or executor), the statement cache, sending the statement |

The strawberry resolvers stay the reference implementation and the fallback.
"""

from .operation import QueryOperation, Unsupported
from .route import answer

__all__ = ["QueryOperation", "Unsupported", "answer"]
