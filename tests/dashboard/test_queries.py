"""The dashboards' SQL lives in app/dashboard/queries.py, and nothing is formatted into it at call time."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "app" / "dashboard"
# rollups.py writes the rollups (its SQL is its own); display.py, routes.py and api.py run no SQL;
# facts.py only holds the fragment both read entries through.
READERS = ("service.py", "creator.py", "fan.py", "platform.py", "export.py", "ranges.py", "sources.py", "facts.py")


def _runs_sql(node: ast.AST) -> bool:
    """A call of `text(...)` or of `<something>.execute(...)`."""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "text") or (isinstance(f, ast.Attribute) and f.attr == "execute")


@pytest.mark.parametrize("module", READERS)
def test_the_figure_modules_run_no_sql_of_their_own(module):
    tree = ast.parse((DASHBOARD / module).read_text())
    offending = [n.lineno for n in ast.walk(tree) if _runs_sql(n)]
    assert offending == [], f"{module} runs SQL at lines {offending}: put it in queries.py"


def _formats_a_string(node: ast.AST) -> bool:
    """An f-string, a `.format(...)` call, or `%` / `+` with a string literal."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add))
            and any(isinstance(side, ast.Constant) and isinstance(side.value, str) for side in (node.left, node.right)))


def test_queries_formats_no_string_inside_a_function():
    """Statements are put together when the module loads, from its own fixed fragments;
    a function only picks one and binds every value as a parameter."""
    tree = ast.parse((DASHBOARD / "queries.py").read_text())
    offending = [(fn.name, node.lineno) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                 for node in ast.walk(fn) if _formats_a_string(node)]
    assert offending == []


def test_reading_the_watermark_turns_jit_off_for_the_rest_of_the_transaction_only(ctx):
    """Every statement that reads the tail reads W first (queries.watermark): that also
    turns JIT off (compiling a tail query's plan cost 20x reading its rows), for this
    transaction only."""
    from sqlalchemy import text

    from app.dashboard import queries
    from app.extensions import db

    db.session.rollback()
    before = db.session.scalar(text("SHOW jit"))
    db.session.execute(text("SET LOCAL jit = on"))
    queries.watermark()
    assert db.session.scalar(text("SHOW jit")) == "off"
    db.session.rollback()
    assert db.session.scalar(text("SHOW jit")) == before
    db.session.rollback()
