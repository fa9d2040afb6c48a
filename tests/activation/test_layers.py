"""The shape follows the data flow: identity sits below audiences and the Profile API; neither imports
upward (checked on the import statements of every module, so a lazy import inside a function counts)."""

from __future__ import annotations

import ast
from pathlib import Path

ACTIVATION = Path(__file__).resolve().parents[2] / "activation"


def imported_modules(package: str) -> dict[str, set[str]]:
    """module path → every module name it imports (absolute and relative)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ACTIVATION / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against the package
                    parts = ["activation", *path.relative_to(ACTIVATION).parent.parts]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        found[str(path.relative_to(ACTIVATION))] = names
    return found


def offenders(package: str, above: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {
        module: sorted(n for n in names if any(n == a or n.startswith(a + ".") for a in above))
        for module, names in imported_modules(package).items()
    }
    return {module: names for module, names in bad.items() if names}


def test_identity_imports_neither_audiences_nor_the_profile_api() -> None:
    assert offenders("identity", ("activation.audiences", "activation.profiles_api")) == {}


def test_audiences_do_not_import_the_profile_api() -> None:
    assert offenders("audiences", ("activation.profiles_api",)) == {}


def test_the_checker_sees_an_upward_import() -> None:
    """The test above would fail: the Profile API imports audiences, and the checker finds it."""
    assert "profiles_api/documents.py" in offenders("profiles_api", ("activation.audiences",))


def test_the_event_to_profile_resolution_is_written_once() -> None:
    """identity.resolve owns the rule (user_id's profile, else anonymous_id's), in its two forms: over
    the mapping, and over a bound scope. Every other reader asks it for the SQL."""
    forms = ("if(u.profile_id != ''", "transform(s.user_id")
    holders = {
        str(path.relative_to(ACTIVATION))
        for path in ACTIVATION.rglob("*.py")
        if any(form in path.read_text() for form in forms)
    }
    assert holders == {"identity/resolve.py"}
