"""The ledger's database code is its source (app/ledger/sql): the database the
migrations built runs exactly those functions and triggers, and the comparison
(`app.ledger.sql.differences`, alembic_utils' own) notices every kind of drift."""
import re

import pytest
from alembic_utils.pg_function import PGFunction
from sqlalchemy import text

from app.extensions import db
from app.ledger import sql as ledger_sql


@pytest.fixture()
def conn(ctx):
    """A connection of its own whose changes are rolled back afterwards."""
    with db.engine.connect() as connection:
        yield connection
        connection.rollback()


def test_the_migrated_database_runs_exactly_the_ledger_sql_source(conn):
    """No function or trigger differs from its source file, is missing, or lives only in the database
    (so no current ledger function's body lives only in a migration)."""
    assert ledger_sql.differences(conn) == []


def test_the_source_holds_every_function_and_trigger_that_moves_or_guards_money():
    names = {re.match(r"\w+", entity.signature).group() for entity in ledger_sql.FUNCTIONS}
    assert names == {"idempotency_claim", "ledger_assert_balanced", "ledger_entries_balanced", "ledger_post",
                     "ledger_post_batch", "ledger_post_request", "ledger_reject_change", "ledger_transfers_balanced"}
    assert {entity.signature for entity in ledger_sql.TRIGGERS} == {
        "ledger_entries_balanced", "ledger_transfers_balanced", "ledger_entries_immutable",
        "ledger_entries_no_truncate", "ledger_transfers_immutable", "ledger_transfers_no_truncate"}


def test_a_function_changed_in_the_database_is_a_difference(conn):
    conn.execute(text("""CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN RETURN OLD; END $$"""))
    assert ledger_sql.differences(conn) == ["replace PGFunction: public.ledger_reject_change()"]


def test_a_trigger_changed_in_the_database_is_a_difference(conn):
    conn.execute(text("DROP TRIGGER ledger_entries_immutable ON ledger_entries"))
    conn.execute(text("CREATE TRIGGER ledger_entries_immutable BEFORE DELETE ON ledger_entries "
                      "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"))
    assert ledger_sql.differences(conn) == ["replace PGTrigger: public.ledger_entries_immutable False "
                                            "public.ledger_entries"]


def test_a_trigger_missing_from_the_database_is_a_difference(conn):
    conn.execute(text("DROP TRIGGER ledger_transfers_no_truncate ON ledger_transfers"))
    assert ledger_sql.differences(conn) == ["create PGTrigger: public.ledger_transfers_no_truncate False "
                                            "public.ledger_transfers"]


def test_a_function_only_in_the_database_is_a_difference(conn):
    """A function a migration created but no source file holds: the next generated migration would drop it."""
    conn.execute(text("CREATE FUNCTION ledger_stray(p bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT p $$"))
    assert ledger_sql.differences(conn) == ["drop PGFunction: public.ledger_stray(p bigint)"]


def test_a_source_file_changed_after_the_last_migration_is_a_difference(conn):
    """Editing the source without generating a migration is caught too."""
    post = next(e for e in ledger_sql.FUNCTIONS if e.signature.startswith("ledger_post("))
    edited = PGFunction(post.schema, post.signature,
                        post.definition.replace("o_created := true;", "o_created := true; -- edited"))
    assert edited.definition != post.definition
    entities = [edited if entity is post else entity for entity in ledger_sql.ENTITIES]
    assert [line.split("(")[0] for line in ledger_sql.differences(conn, entities)] == [
        "replace PGFunction: public.ledger_post"]


def test_comparing_changes_nothing(conn):
    """The comparison creates and drops objects only inside savepoints it rolls back."""
    before = conn.execute(text("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace")).scalar()
    ledger_sql.differences(conn)
    assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace")).scalar() \
        == before
    assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"
