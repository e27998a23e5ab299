"""Dependencies point one way: the ledger, the payments transport, the job queue and
the clock sit below the features and import none of them, not even from inside a
function."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
FEATURES = ("alerts", "auth", "calls", "chat", "creator", "dashboard", "follows", "goals", "leaderboard", "main",
            "notifications", "payouts", "profiles", "protections", "push", "streams", "tipmenu", "tips", "wallet")
# app/payments talks to the provider and routes webhook events to the handlers
# features register; it moves no tokens and knows no feature.
BELOW_THE_FEATURES = ("ledger", "payments", "jobs.py", "clock.py")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("layer", BELOW_THE_FEATURES)
def test_lower_layers_import_no_feature(layer):
    files = sorted((APP / layer).rglob("*.py")) if (APP / layer).is_dir() else [APP / layer]
    wrong = {f"{path.relative_to(APP.parent)}: {name}" for path in files for name in imported_modules(path)
             if any(name == f"app.{f}" or name.startswith(f"app.{f}.") for f in FEATURES)}
    assert wrong == set()


def test_realtime_is_transport_and_imports_no_feature():
    """app/realtime carries messages; each feature's live.py says who joins and what is sent.
    It knows who is logged in (app.auth's User: identity, as flask_login), nothing more."""
    files = sorted((APP / "realtime").rglob("*.py"))
    wrong = {f"{path.relative_to(APP.parent)}: {name}" for path in files for name in imported_modules(path)
             if any(name == f"app.{f}" or name.startswith(f"app.{f}.") for f in FEATURES if f != "auth")}
    assert wrong == set()
