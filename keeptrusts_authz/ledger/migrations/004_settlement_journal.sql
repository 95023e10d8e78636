-- The write-ahead settlement journal: every charge the settler sends to Redis, written here first,
-- outside Redis, with what booking it needs when Redis lost the reservation (the paying wallet
-- and its owners from the signed access-log metadata). `keeptrusts-authz restore` charges the
-- rows the rebuilt books lack; the settler charges a row Redis answers `unknown` for while the
-- reservation could still be open (wallets/restore.py, gateway/settler.py).
-- One row per reservation (the first settlement of it), append-only: ON CONFLICT DO NOTHING.
CREATE TABLE settlement_journal (
    org            TEXT    NOT NULL,
    reservation_id TEXT    NOT NULL,
    wallet         TEXT    NOT NULL,
    team           TEXT    NOT NULL,
    grp            TEXT    NOT NULL,   -- consumer group
    usr            TEXT    NOT NULL,   -- user ('' = none)
    model          TEXT    NOT NULL,
    label_model    TEXT    NOT NULL,   -- the usage counters' model label
    cost           BIGINT  NOT NULL,   -- micro-units
    estimated      BOOLEAN NOT NULL,
    input_tokens   BIGINT  NOT NULL,
    output_tokens  BIGINT  NOT NULL,
    cached_tokens  BIGINT  NOT NULL,
    admitted_ms    BIGINT  NOT NULL,   -- when the Check reserved (from the signed expiry)
    ended_ms       BIGINT  NOT NULL,   -- end of the request (access-log entry; 0 = unknown)
    open_until_ms  BIGINT  NOT NULL,   -- until when the reservation could still be open
    received_ms    BIGINT  NOT NULL,   -- when the settler journaled it
    PRIMARY KEY (org, reservation_id)
);

CREATE INDEX settlement_journal_received ON settlement_journal (org, received_ms);

CREATE FUNCTION settlement_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'settlement_journal is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER settlement_journal_no_update
    BEFORE UPDATE ON settlement_journal
    FOR EACH ROW EXECUTE FUNCTION settlement_journal_append_only();
