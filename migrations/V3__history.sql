-- jes schema version 3: the delivery history (issue 14, the history of issue 13 in the database).
-- See ARCHITECTURE.md, "The PostgreSQL store". One row per outcome event of every server on this
-- database, so that one search answers for all of them. Like version 1, later versions may add
-- tables and nullable columns here, never drop or rename.

CREATE TABLE jes_history (
    -- Commit order: breaks ties between events of the same millisecond.
    seq bigserial PRIMARY KEY,
    -- Epoch milliseconds of the clock of the server that reported the event.
    time_ms bigint NOT NULL,
    -- The message's one id; '' for a recipient refused before the message had one.
    id text NOT NULL,
    message_id text,
    event text NOT NULL,
    sender text NOT NULL,
    recipient text NOT NULL,
    subject text,
    -- The subject folded to lower case by jes (Unicode, whatever the database's locale), for the
    -- case-insensitive substring search.
    subject_folded text,
    size bigint NOT NULL,
    attempt integer NOT NULL,
    remote_host text,
    remote_ip text,
    tls text,
    reply text NOT NULL,
    status text,
    -- Which server reported the event (host name:process id), for an administrator reading the table.
    server text
);
-- Every search is one of these lookups; none walks the table (tests/pg_history.rs reads the plans).
CREATE INDEX jes_history_time ON jes_history (time_ms);
CREATE INDEX jes_history_id ON jes_history (id);
CREATE INDEX jes_history_message_id ON jes_history (message_id);
CREATE INDEX jes_history_sender ON jes_history (lower(sender));
CREATE INDEX jes_history_recipient ON jes_history (lower(recipient));
-- `@domain`: a prefix of the reversed address, which a B-tree answers.
CREATE INDEX jes_history_sender_domain ON jes_history (reverse(lower(sender)) text_pattern_ops);
CREATE INDEX jes_history_recipient_domain ON jes_history (reverse(lower(recipient)) text_pattern_ops);
