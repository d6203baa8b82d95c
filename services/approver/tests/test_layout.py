"""The layers keep their promises: the domain is pure and the service layer speaks no SQL or
HTTP (docs/workflow.md, Layout). Read from the source, so a stray import fails here first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import approver

pytestmark = pytest.mark.unit

PACKAGE = Path(approver.__file__).parent

#: What each layer may import, by top-level name (``approver.x`` by its layer).
ALLOWED = {
    # shared.settings only for NESTED_BLOCK, the config every nested settings block shares.
    "domain": {
        "approver.domain",
        "shared.contracts",
        "shared.principal",
        "shared.settings",
        "pydantic",
    },
    "service_layer": {
        "approver.domain",
        "approver.service_layer",
        "shared.contracts",
        "shared.principal",
        "shared.telemetry",
        "shared.tools",
        "opentelemetry",
    },
}


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names imported by ``path`` (a module of ``package``), trimmed to two parts."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, *(node.module.split(".") if node.module else [])]))
            else:
                found.add(node.module or "")
    stdlib = {"__future__", *__import__("sys").stdlib_module_names}
    return {".".join(name.split(".")[:2]) for name in found if name.split(".")[0] not in stdlib}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_it_may(layer: str) -> None:
    wrong = {
        f"{module.name}: {name}"
        for module in (PACKAGE / layer).glob("*.py")
        for name in _imports(module, f"approver.{layer}")
        if not any(name == ok or name.startswith(f"{ok}.") for ok in ALLOWED[layer])
    }
    assert not wrong, f"{layer} reaches outside its layer: {sorted(wrong)}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from fastapi import HTTPException\nfrom ..postgres.store import x\n")
    assert _imports(module, "approver.domain") == {"fastapi", "approver.postgres"}
