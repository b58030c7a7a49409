"""Dependencies point one way: `common/` (shipped in both images) imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN_FROM_COMMON = ("master", "worker", "pki", "devstack", "tests", "bench")


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((REPO / "common").rglob("*.py")), ids=lambda p: p.relative_to(REPO).as_posix())
def test_common_imports_nothing_above_it(path: Path) -> None:
    """A module the images ship never imports a service, the PKI tool, the launcher or the tests."""
    bad = _imported_top_levels(path) & set(FORBIDDEN_FROM_COMMON)
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("service,other", [("master", "worker"), ("worker", "master")])
def test_services_do_not_import_each_other_or_the_launcher(service: str, other: str) -> None:
    """A service's image holds only `common/` and itself: no import of the other service, pki, devstack or tests."""
    for path in sorted((REPO / service).rglob("*.py")):
        bad = _imported_top_levels(path) & {other, "pki", "devstack", "tests", "bench"}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_import_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Control: the parser finds both import forms, so the checks above can fail."""
    probe = tmp_path / "probe.py"
    probe.write_text("import devstack.local_run\nfrom pki.generate import generate\nfrom . import sibling\n")
    assert _imported_top_levels(probe) == {"devstack", "pki"}
