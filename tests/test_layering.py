"""Layering: the domain knows nothing of HTTP, GraphQL or the authorization server.

Every module under ``programme_api/domain`` is parsed and every import in it (module level or inside a
function, absolute or relative) resolved to a full module name; none may lie in a layer above the domain.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import programme_api

PACKAGE_ROOT = Path(programme_api.__file__).parent
DOMAIN = PACKAGE_ROOT / "domain"
# The layers that call the domain; the domain calling back into them would tie rules to transport.
UPPER_LAYERS = (
    "programme_api.web",
    "programme_api.schema",
    "programme_api.oauth",
    "programme_api.explorer",
    "programme_api.app",
    "programme_api.runtime",
    "programme_api.cli",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, full module name) of every import in the file, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # ``from .. import web`` names a module too
                yield node.lineno, f"{target}.{alias.name}"


def is_upper(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in UPPER_LAYERS)


def test_relative_imports_are_resolved_to_full_names() -> None:
    """The scan itself: a function-level relative import of the web layer is seen as one."""
    consent = DOMAIN / "consent.py"
    names = {module for _line, module in imported_modules(consent)}
    assert "programme_api.domain.models" in names
    assert "programme_api.domain.access.require_scope" in names
    assert is_upper("programme_api.web.request_id")
    assert not is_upper("programme_api.webhooks")


def test_domain_imports_nothing_from_the_layers_above_it() -> None:
    offending = [
        f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {module}"
        for path in sorted(DOMAIN.rglob("*.py"))
        for line, module in imported_modules(path)
        if is_upper(module)
    ]
    assert offending == []


def test_the_request_id_reaches_the_domain_through_the_neutral_context() -> None:
    """The web layer binds the id; the domain's audit events read the same variable."""
    from programme_api import request_context
    from programme_api.web import request_id

    token = request_id.bind_request_id("request-from-the-edge")
    try:
        assert request_context.current_request_id() == "request-from-the-edge"
    finally:
        request_id.reset_request_id(token)
    assert request_context.current_request_id() is None
