-- jes schema version 7: the servers on this database (issue 15). Each server writes its row every
-- few seconds (`cluster::postgres`), so the console and /api/cluster of any server list them all:
-- which are up, which stopped, which were lost without stopping. Times are the database's clock
-- (epoch milliseconds), so servers with skewed clocks are judged alike.
CREATE TABLE jes_nodes (
    -- `node.name`.
    name text PRIMARY KEY,
    -- The process behind the name (host:pid:start), so that two servers given one name are noticed.
    instance text NOT NULL,
    -- `hostname` (the name in greetings), the machine, and the jes version.
    hostname text NOT NULL,
    version text NOT NULL,
    started_ms bigint NOT NULL,
    seen_ms bigint NOT NULL,
    -- Set by a server that stopped cleanly; cleared when it beats again.
    stopped_ms bigint,
    smtp_sessions integer NOT NULL DEFAULT 0,
    pop3_sessions integer NOT NULL DEFAULT 0,
    -- The server's counters since its start (as its /api/stats totals).
    accepted bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0,
    bounced bigint NOT NULL DEFAULT 0,
    deferred bigint NOT NULL DEFAULT 0
);
