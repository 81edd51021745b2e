-- jes schema version 1: the queue and the mailboxes (issue 14). See ARCHITECTURE.md,
-- "The PostgreSQL store". Every later version must leave this usable by the release before it
-- (servers upgrade one at a time): add tables and nullable columns, never drop or rename.

-- A message's bytes, stored once however many queue entries and mailbox copies share them,
-- keyed by their SHA-256. Rows no entry refers to are removed by the one that dropped the last
-- reference; the foreign keys make a removal that races a new reference fail instead of losing it.
CREATE TABLE jes_bodies (
    digest bytea PRIMARY KEY,
    data bytea NOT NULL
);

-- One row per queued message. The lease (owner, token, until) is what a delivery attempt holds;
-- every write of the attempt names the token. Times are epoch milliseconds of the database's clock.
CREATE TABLE jes_queue (
    id text PRIMARY KEY,
    sender text NOT NULL,
    digest bytea NOT NULL REFERENCES jes_bodies (digest),
    received_ms bigint NOT NULL,
    next_attempt_ms bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    delay_warned boolean NOT NULL DEFAULT false,
    -- Finished but undeliverable and not bounced (JES's failed/): kept, never attempted.
    failed boolean NOT NULL DEFAULT false,
    lease_owner text,
    lease_token bigint,
    lease_until_ms bigint NOT NULL DEFAULT 0,
    -- DSN parameters of MAIL (RFC 3461), as the client sent them: RET (FULL|HDRS), ENVID (xtext).
    ret text,
    envid text
);
CREATE INDEX jes_queue_due ON jes_queue (next_attempt_ms) WHERE NOT failed;

-- One row per recipient of a queued message, in envelope order.
CREATE TABLE jes_queue_recipients (
    message_id text NOT NULL REFERENCES jes_queue (id) ON DELETE CASCADE,
    position integer NOT NULL,
    address text NOT NULL,
    -- held: kept back by capture mode; released: let out of it by an administrator.
    state text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'held', 'released')),
    last_error text,
    -- DSN parameters of RCPT (RFC 3461): NOTIFY (as written), ORCPT (addr-type;xtext).
    notify text,
    orcpt text,
    PRIMARY KEY (message_id, position)
);

-- Lease tokens: unique across every server, so a token can never be reused by a successor.
CREATE SEQUENCE jes_lease_tokens;

-- One row per message in a mailbox. `mailbox` is the mailbox's key (the name of its folder in
-- the file store); `uid` is what UIDL shows (kept from JES on migration); `seq` orders oldest
-- first; `prefix` is the copy's own first lines (X-DeliveredTo, Return-Path) before the shared
-- body; `size` is what RETR sends (src/stored_form.rs).
CREATE TABLE jes_mail (
    mailbox text NOT NULL,
    uid text NOT NULL,
    seq bigserial NOT NULL,
    message_id text NOT NULL,
    prefix bytea NOT NULL,
    digest bytea NOT NULL REFERENCES jes_bodies (digest),
    size bigint NOT NULL,
    stored_ms bigint NOT NULL,
    PRIMARY KEY (mailbox, uid)
);
CREATE INDEX jes_mail_order ON jes_mail (mailbox, seq);
CREATE INDEX jes_mail_digest ON jes_mail (digest);
CREATE INDEX jes_queue_digest ON jes_queue (digest);

-- The one POP3 session per mailbox across all servers: a lease the session renews; another
-- server may take the row over once `until_ms` (database clock) has passed.
CREATE TABLE jes_mailbox_sessions (
    mailbox text PRIMARY KEY,
    owner text NOT NULL,
    token bigint NOT NULL,
    until_ms bigint NOT NULL
);
