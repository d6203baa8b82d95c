"""Make ``import evals`` mean the installed package in these tests.

Under pytest's importlib mode a test file here is imported as ``evals.tests.<name>``, and
pytest creates the parent module ``evals`` from the repository's ``evals/`` folder, which
shadows the installed package (``evals/src/evals``). Tests that only run programs do not
mind (test_retrieval_bench.py); the eval's unit tests import its modules, so the installed
package is put back in place of that parent before they are collected.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

_INSTALLED = Path(__file__).resolve().parents[1] / "src" / "evals"


def _installed_evals() -> None:
    current = sys.modules.get("evals")
    paths = [Path(p).resolve() for p in getattr(current, "__path__", [])]
    if current is not None and _INSTALLED in paths:
        return
    sys.modules.pop("evals", None)
    module = importlib.import_module("evals")
    if _INSTALLED not in [Path(p).resolve() for p in module.__path__]:
        raise ImportError(f"evals resolves to {list(module.__path__)}, not {_INSTALLED}")


_installed_evals()
