"""The places allowed to declare a hand-written filter checked, listed in one place for review.

Everything else reads through ``access.readable``/``in_reach`` and what derives from them. A statement
built by hand is accepted only through ``access.trusted(statement, reason)``; this test finds every call of
it in the package (by parsing the source, so a call cannot hide from it) and compares the (module,
function) pairs with ``ALLOWED``. A new call fails here until someone has checked that its filter is
equivalent to the access rules, said why in the function's docstring, and added it below.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import programme_api

PACKAGE_ROOT = Path(programme_api.__file__).parent
ACCESS_MODULE = "programme_api.domain.access"

# (module, function) -> why the filter is safe, in a few words (the docstring there says it in full).
ALLOWED: dict[tuple[str, str], str] = {
    ("programme_api.domain.consent", "_open_consents"): "consents of a participant found in reach",
    ("programme_api.domain.consent", "erase_participant"): "an admin's erasure counts the participant's responses",
    ("programme_api.domain.evaluation", "evaluator_rows"): "the evaluation project's own rule",
    ("programme_api.domain.evaluation", "project_responses"): "the same project rule, its organisations as values",
    ("programme_api.domain.evaluation", "evaluator_page"): "a page of project_responses with per-row lookups",
    ("programme_api.domain.evaluation", "project_organisation_ids"): "the project's own participating organisations",
    ("programme_api.domain.facilitators", "_account"): "an admin links an account of their own organisation",
    ("programme_api.domain.evaluation", "suppression_threshold"): "the participating organisations' thresholds",
    ("programme_api.domain.evaluation", "instrument_definition"): "instrument rule for the project's organisation",
    ("programme_api.domain.exports", "project_instruments"): "instrument rule for the project's organisation",
    ("programme_api.domain.evaluation_projects", "owned"): "projects the caller's organisation owns, for its admin",
    ("programme_api.domain.evaluation_invitations", "invited_projects"): "projects the caller is invited to",
    ("programme_api.domain.idempotency", "_find"): "the caller's own idempotency record",
    ("programme_api.domain.imports", "_taken_references"): "organisation-wide reference uniqueness",
    ("programme_api.oauth.admin", "_evaluation_project"): "a project the caller's organisation takes part in",
    ("programme_api.domain.participants", "register_participant"): "organisation-wide reference uniqueness",
    ("programme_api.domain.programme", "attendance_tallies"): "counts correlated to a readable session row",
    ("programme_api.domain.programme", "region_totals"): "counts over sessions and marks of readable groups",
    ("programme_api.domain.regions", "_refuse_taken_slug"): "organisation-wide slug uniqueness",
    ("programme_api.domain.surveys", "define_custom_instrument"): "the organisation's own instrument versions",
    ("programme_api.domain.surveys", "_refuse_duplicate"): "organisation-wide uniqueness of a response",
    ("programme_api.domain.webhooks", "_client"): "an admin's own organisation's client",
    ("programme_api.oauth.documents", "registered_text"): "the caller's own client's documents",
}
# Places whose docstrings are not required to carry the reason yet (modules being replaced wholesale).
DOCSTRING_PENDING: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class TrustedCall:
    module: str
    function: str
    line: int
    reason: str | None
    docstring: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _reason(call: ast.Call) -> str | None:
    """The literal reason given (keyword or second argument), or None when it is not a literal."""
    given = [keyword.value for keyword in call.keywords if keyword.arg == "reason"] or call.args[1:2]
    if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
        return given[0].value
    return None


@dataclass(frozen=True)
class Bindings:
    """The local names a file gives the access module and its ``trusted`` function (aliases included)."""

    module_names: frozenset[str]
    function_names: frozenset[str]


def _resolve(package: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def access_bindings(tree: ast.AST, module: str, is_package: bool) -> Bindings:
    package = module if is_package else module.rpartition(".")[0]
    modules: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(package, node)
            for alias in node.names:
                if source == ACCESS_MODULE and alias.name == "trusted":
                    functions.add(alias.asname or alias.name)
                if f"{source}.{alias.name}" == ACCESS_MODULE:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(alias.asname for alias in node.names if alias.name == ACCESS_MODULE and alias.asname)
    return Bindings(frozenset(modules), frozenset(functions))


def _trusted_calls_in(tree: ast.AST, bindings: Bindings) -> list[ast.Call]:
    def is_marker(func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in bindings.function_names
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "trusted"
            and isinstance(func.value, ast.Name)
            and func.value.id in bindings.module_names
        )

    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and is_marker(node.func)]


def trusted_calls(path: Path, module: str | None = None) -> list[TrustedCall]:
    """Every call of ``access.trusted`` in the file, with the top-level function it is made in."""
    module = module or module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    bindings = access_bindings(tree, module, path.name == "__init__.py")
    found: list[TrustedCall] = []
    for top in tree.body:
        function = top.name if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) else "<module>"
        docstring = (ast.get_docstring(top) or "") if function != "<module>" else ""
        for call in _trusted_calls_in(top, bindings):
            found.append(TrustedCall(module, function, call.lineno, _reason(call), docstring))
    return found


def package_files() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def all_trusted_calls() -> list[TrustedCall]:
    return [call for path in package_files() if module_name(path) != ACCESS_MODULE for call in trusted_calls(path)]


def test_the_scan_finds_calls_however_they_are_written(tmp_path: Path) -> None:
    """Through the module, by name, under an alias, nested in a helper, from another layer; not a namesake."""
    probe = tmp_path / "scan_probe.py"
    probe.write_text(
        "from . import access\nfrom .access import trusted\nfrom .access import trusted as vouch\n"
        "import programme_api.domain.access as rules\n"
        "def first():\n    return access.trusted(s, reason='a')\n"
        "async def second():\n    def inner():\n        return trusted(s, 'b')\n    return inner()\n"
        "def third(why):\n    return vouch(s, why)\n"
        "def fourth():\n    return rules.trusted(s, reason='d')\n"
        "def namesake(keys):\n    return keys.trusted(1)\n"
    )
    calls = [(c.function, c.reason) for c in trusted_calls(probe, "programme_api.domain.scan_probe")]
    assert calls == [("first", "a"), ("second", "b"), ("third", None), ("fourth", "d")]
    layered = tmp_path / "layered.py"
    layered.write_text("from ..domain import access\ndef read():\n    return access.trusted(s, reason='e')\n")
    assert [c.function for c in trusted_calls(layered, "programme_api.schema.layered")] == ["read"]


def test_every_trusted_statement_is_on_the_allow_list_and_every_entry_is_used() -> None:
    found = {(call.module, call.function) for call in all_trusted_calls()}
    assert sorted(found - ALLOWED.keys()) == [], "new trusted filters: review them, then add them to ALLOWED"
    assert sorted(ALLOWED.keys() - found) == [], "ALLOWED lists places that no longer declare a trusted filter"


def test_every_trusted_statement_gives_its_reason_and_explains_it() -> None:
    calls = all_trusted_calls()
    assert [f"{c.module}:{c.line}" for c in calls if not (c.reason and c.reason.strip())] == []
    unexplained = [
        f"{c.module}.{c.function}"
        for c in calls
        if (c.module, c.function) not in DOCSTRING_PENDING and "Trusted filter" not in c.docstring
    ]
    assert unexplained == []


def test_nothing_outside_the_access_module_marks_statements_another_way() -> None:
    """The private marker, the option's name and ``execution_options`` carrying it stay inside access.py."""
    offending = []
    for path in package_files():
        if module_name(path) == ACCESS_MODULE:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name in {"_mark_checked", "_ACCESS_CHECKED"}:
                    offending.append(f"{module_name(path)}:{node.lineno} uses {name}")
            if isinstance(node, ast.Constant) and node.value == "access_checked":
                offending.append(f"{module_name(path)}:{node.lineno} names the checked option")
            if isinstance(node, ast.keyword) and node.arg == "access_checked":
                offending.append(f"{module_name(path)}:{node.value.lineno} sets the checked option")
    assert offending == []
