-- Console logins shared by every server on the database (issue 15): a load balancer that
-- switches an administrator between servers must not log them out. The token's SHA-256 is
-- kept, never the token; expiry is on the database's clock (epoch milliseconds).
CREATE TABLE jes_console_sessions (
    token_hash bytea PRIMARY KEY,
    login text NOT NULL,
    csrf text NOT NULL,
    expires_ms bigint NOT NULL
);
CREATE INDEX jes_console_sessions_expiry ON jes_console_sessions (expires_ms);
