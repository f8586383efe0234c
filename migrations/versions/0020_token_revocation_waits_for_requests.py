"""A revoked token discloses nothing after its revocation is answered (PostgreSQL).

A request checks its bearer token once, as it starts. One that had checked it and then waited
(for a family's row, say) went on after the token, or its client, was revoked and answered,
disclosed, and put its `read` after the `revoke` on the trail (a race review).

Now every event a request records as permitted under a token takes its client's turn,
shared, and looks at the token and its client again: a revocation of either that committed
first ends the request (SQLSTATE IM401, answered 401 with nothing done, core/errors.py); one
that comes later takes the turn alone (auth/service.py), so it waits for the requests holding
it to commit, and their events come before its own. A turn is an advisory lock: no row is
written for it, and only revocations, which are rare, ever wait.

Events about a token itself (its issue, its revocation, its introspection) are recorded by
the token endpoints for a client authenticated with its secret: they name the token they
concern, not one the client acted with, and are left alone.

SQLite needs none of this: a request's transaction takes the one write lock at its first
statement (core/db.py), so no revocation commits while it runs.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: The client's turn, a key for PostgreSQL's advisory locks, from the client's id as text.
CLIENT_TURN = """
CREATE FUNCTION oauth_client_turn(client text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('oauth client ' || lower(client), 0)
$$
"""

TOKEN_IN_FORCE = """
CREATE FUNCTION audit_pending_token_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(oauth_client_turn(NEW.client_id));
    -- A fresh look, once the turn is held (a volatile function's statements each take a new
    -- snapshot): a revocation that committed before it is seen here.
    IF EXISTS (SELECT 1 FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id
               WHERE t.id = NEW.token_id
                 AND (t.revoked_at IS NOT NULL OR c.revoked_at IS NOT NULL)) THEN
        RAISE EXCEPTION 'the access token was revoked while the request ran'
            USING ERRCODE = 'IM401';
    END IF;
    RETURN NEW;
END $$
"""


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CLIENT_TURN)
    op.execute(TOKEN_IN_FORCE)
    op.execute("CREATE TRIGGER audit_pending_token_in_force BEFORE INSERT ON audit_pending "
               "FOR EACH ROW WHEN (NEW.outcome = 'permit' AND NEW.token_id IS NOT NULL "
               "AND NEW.client_id IS NOT NULL "
               "AND NEW.resource_type IS DISTINCT FROM 'access_token') "
               "EXECUTE FUNCTION audit_pending_token_in_force()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER audit_pending_token_in_force ON audit_pending")
    op.execute("DROP FUNCTION audit_pending_token_in_force()")
    op.execute("DROP FUNCTION oauth_client_turn(text)")
