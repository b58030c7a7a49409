"""The README's security tables name tests that exist: a renamed or deleted test fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "docs" / "DESIGN.md", REPO / "docs" / "RELIABILITY.md"]
FILE_RE = re.compile(r"`(?:tests/)?((?:swarm/)?test_\w+\.py)(?:::(test_\w+))?")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def references(text: str) -> list[tuple[str, str | None]]:
    """Every `tests/test_x.py` and `test_x.py::test_name` written in backticks (`test_x_...` is a prefix, not a name)."""
    found = []
    for m in FILE_RE.finditer(text):
        abbreviated = text.startswith("...", m.end())
        found.append((m.group(1), None if abbreviated else m.group(2)))
    return found


def test_every_test_named_in_the_docs_exists() -> None:
    """Each test file and test function the README and design notes cite as proof is in the suite."""
    missing = []
    for doc in DOCS:
        if not doc.exists():
            continue
        for file_name, test_name in references(doc.read_text()):
            path = REPO / "tests" / file_name
            if not path.exists():
                missing.append(f"{doc.name}: tests/{file_name}")
            elif test_name and test_name not in _test_names(path):
                missing.append(f"{doc.name}: tests/{file_name}::{test_name}")
    assert not missing, "cited but not in the suite: " + ", ".join(missing)


def test_reference_parser_finds_both_forms() -> None:
    """Control: a file and a file::function reference are both found, abbreviations are not taken as names."""
    text = "| x | `tests/test_a.py::test_one`, `..._two_...`, `test_b.py`, `test_c.py::test_pre_...` |"
    assert references(text) == [("test_a.py", "test_one"), ("test_b.py", None), ("test_c.py", None)]
