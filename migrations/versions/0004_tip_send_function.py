"""idempotency_claim() and tip_send(): a tip is one statement

Measured (bench/tips_http.py, 32 fans tipping one creator through gunicorn):
a tip took seven round trips to PostgreSQL, four of them through the ORM, and
the web tier's CPU per round trip, not the database, held tips to ~0.33x an
authenticated no-op. These functions do the same steps inside PostgreSQL, in
the caller's transaction, so the tip's writes are one statement.

`idempotency_claim` is now *the* claim rule (`app.idempotency.claim` calls it
too): insert the key reserving the resource id from the given sequence, or,
when the key exists (a concurrent first use blocks on the unique index until
it ends), report the first request's resource id or a fingerprint conflict.

`tip_send` claims the key, then, for a fresh claim, posts the legs the caller
built and validated with `app.ledger` through `ledger_post` (key
`tip:<id>`) and writes the tip row. Its status is one of `created`,
`replayed` (the first tip's id, time, transfer and the sender's balance after
it), `conflict` (key used with other parameters) or `insufficient_funds`
(with the shortfall). On anything but created/replayed the caller must roll
back, which also releases the claim.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""
    CREATE FUNCTION idempotency_claim(p_user bigint, p_key text, p_scope text, p_fingerprint text,
                                      p_sequence regclass,
                                      OUT o_fresh boolean, OUT o_resource_id bigint, OUT o_conflict boolean)
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO idempotency_keys (user_id, key, scope, fingerprint, resource_id)
             VALUES (p_user, p_key, p_scope, p_fingerprint, nextval(p_sequence))
        ON CONFLICT (user_id, key) DO NOTHING
        RETURNING resource_id INTO o_resource_id;
        IF FOUND THEN
            o_fresh := true;
            o_conflict := false;
            RETURN;
        END IF;
        o_fresh := false;
        SELECT resource_id, fingerprint <> p_fingerprint INTO o_resource_id, o_conflict
          FROM idempotency_keys WHERE user_id = p_user AND key = p_key;
    END $$
    """)
    op.execute("""
    CREATE FUNCTION tip_send(p_sender bigint, p_creator bigint, p_key text, p_fingerprint text,
                             p_amount bigint, p_creator_share bigint, p_platform_share bigint, p_message text,
                             p_stream_id bigint, p_call_id bigint, p_channel text,
                             p_meta jsonb, p_accounts bigint[], p_amounts bigint[], p_wallet bigint,
                             OUT o_status text, OUT o_tip_id bigint, OUT o_created_at timestamptz,
                             OUT o_transfer_id bigint, OUT o_balance bigint, OUT o_shortfall bigint)
    LANGUAGE plpgsql AS $$
    DECLARE
        claimed record;
        posted record;
        wallet_index int := array_position(p_accounts, p_wallet);
    BEGIN
        claimed := idempotency_claim(p_sender, p_key, 'tips.send', p_fingerprint, 'tips_id_seq');
        o_tip_id := claimed.o_resource_id;
        IF claimed.o_conflict THEN
            o_status := 'conflict';
            RETURN;
        END IF;
        IF NOT claimed.o_fresh THEN
            o_status := 'replayed';
            SELECT t.created_at, t.transfer_id, e.balance_after INTO o_created_at, o_transfer_id, o_balance
              FROM tips t JOIN ledger_entries e ON e.transfer_id = t.transfer_id AND e.account_id = p_wallet
             WHERE t.id = o_tip_id;
            RETURN;
        END IF;
        posted := ledger_post('tip', 'tip:' || o_tip_id, p_meta || jsonb_build_object('tipId', o_tip_id),
                              p_accounts, p_amounts);
        IF posted.o_shortfall > 0 THEN
            o_status := 'insufficient_funds';
            o_shortfall := posted.o_shortfall;
            RETURN;
        END IF;
        o_status := 'created';
        o_transfer_id := posted.o_transfer_id;
        o_balance := posted.o_balances[wallet_index];
        INSERT INTO tips (id, sender_id, creator_id, amount, creator_share, platform_share, message,
                          stream_id, call_id, channel, transfer_id)
             VALUES (o_tip_id, p_sender, p_creator, p_amount, p_creator_share, p_platform_share, p_message,
                     p_stream_id, p_call_id, p_channel, o_transfer_id)
        RETURNING created_at INTO o_created_at;
    END $$
    """)


def downgrade():
    op.execute("DROP FUNCTION tip_send(bigint, bigint, text, text, bigint, bigint, bigint, text, bigint, bigint, "
               "text, jsonb, bigint[], bigint[], bigint)")
    op.execute("DROP FUNCTION idempotency_claim(bigint, text, text, text, regclass)")
