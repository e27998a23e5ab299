"""The ledger's database code, as code: the current source of every function and
trigger that moves or guards tokens, one file each (`functions/`, `triggers/`).

Migrations are generated from these files, never written by hand: edit the
source, then `flask db migrate -m "…"` (alembic_utils, registered in
`migrations/env.py`) compares each entity with the database and writes the
`create_entity` / `replace_entity` / `drop_entity` operations into the new
revision with the full SQL copied in. So a revision keeps meaning what it meant
when it was generated, whatever the source says later, and history is never
edited. Review the generated file: autogenerate also reports the table
differences it sees.

`differences()` is the same comparison, for the test that proves the live
database runs exactly this source.

A file is one statement, optionally after a header of `--` comment lines that
document it (kept out of the database). Functions are written
`CREATE OR REPLACE FUNCTION public.name(…) RETURNS … AS $$ … $$;` (functions
with OUT parameters say `RETURNS record`), which is the shape alembic_utils reads.
"""
from __future__ import annotations

from pathlib import Path

from alembic_utils.pg_function import PGFunction
from alembic_utils.pg_trigger import PGTrigger
from alembic_utils.replaceable_entity import ReplaceableEntity
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

SOURCE = Path(__file__).resolve().parent
SCHEMA = "public"
# The entity types this source covers: autogenerate leaves every other kind of
# database object (views, policies, …) to the hand-written migrations.
ENTITY_TYPES = ("function", "trigger")


def _statement(path: Path) -> str:
    """The file's SQL without its header comment."""
    lines = path.read_text().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


def _trigger(path: Path) -> PGTrigger:
    # alembic_utils reads a trigger with single spaces between its words.
    return PGTrigger.from_sql(" ".join(_statement(path).split()))


FUNCTIONS: list[PGFunction] = [PGFunction.from_sql(_statement(p)) for p in sorted(SOURCE.glob("functions/*.sql"))]
TRIGGERS: list[PGTrigger] = [_trigger(p) for p in sorted(SOURCE.glob("triggers/*.sql"))]
ENTITIES: list[ReplaceableEntity] = [*FUNCTIONS, *TRIGGERS]


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's autogenerate filter: of the alembic_utils entity types, only
    functions and triggers are compared (and only against this source)."""
    return not isinstance(obj, ReplaceableEntity) or type_ in ENTITY_TYPES


def differences(connection: Connection, entities: list[ReplaceableEntity] = ENTITIES) -> list[str]:
    """What `flask db migrate` would change to make the database run `entities`:
    one line per function or trigger that is missing, different, or live but in
    no source file. Empty when the database matches the source.

    alembic_utils' own comparison: each entity is created in a savepoint and read
    back, so both sides are compared as PostgreSQL renders them (whitespace aside).
    Everything happens in savepoints that are rolled back: nothing changes.
    """
    # A savepoint of its own, rolled back at the end: the caller's transaction is left as it was.
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        # The comparison drops and re-creates objects on the ledger tables inside
        # savepoints: fail rather than queue behind a long-running transaction.
        session.execute(text("SET LOCAL lock_timeout = '5s'"))
        found, known = [], set()
        for entity in entities:
            operation = entity.get_required_migration_op(session)
            if operation is not None:
                found.append(f"{type(operation).__name__.removesuffix('Op').lower()} {entity.identity}")
            known.add(entity.get_database_definition(session).identity)
        for kind in (PGFunction, PGTrigger):
            found += [f"drop {live.identity}" for live in kind.from_database(session, SCHEMA)
                      if live.identity not in known]
        return found
    finally:
        session.rollback()
        session.close()
