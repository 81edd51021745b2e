-- jes schema version 2: the accounts (issue 14), everything user.conf holds for a folder without
-- store.url. See ARCHITECTURE.md, "The PostgreSQL store". Usable by version 1 servers: it only
-- adds tables.

-- One row per account: `user.ADDRESS=password` (the canonical address; the password as user.conf
-- stores it: an argon2id hash `jes user` writes, or a JES SHA-1 hash).
CREATE TABLE jes_accounts (
    address text PRIMARY KEY,
    password text NOT NULL
);

-- One row per user property: `userprop.ADDRESS.NAME=value` (forwardAddresses, webhook, ...).
-- No foreign key: as in user.conf, an address may have forwards without an account of its own.
CREATE TABLE jes_account_props (
    address text NOT NULL,
    name text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (address, name)
);

-- The accounts' revision: every change to the two tables above, by jes or by hand in SQL, bumps
-- it in the same transaction and notifies `jes_accounts`; each server polls it (and listens) and
-- reloads the accounts when it moves.
CREATE TABLE jes_accounts_revision (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision bigint NOT NULL
);
INSERT INTO jes_accounts_revision (one, revision) VALUES (true, 0);

CREATE FUNCTION jes_accounts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r bigint;
BEGIN
    UPDATE jes_accounts_revision SET revision = revision + 1 RETURNING revision INTO r;
    PERFORM pg_notify('jes_accounts', r::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jes_accounts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jes_accounts
    FOR EACH STATEMENT EXECUTE PROCEDURE jes_accounts_changed();
CREATE TRIGGER jes_account_props_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jes_account_props
    FOR EACH STATEMENT EXECUTE PROCEDURE jes_accounts_changed();
