-- The archived ledger: one row per Redis stream entry of kt:{org}:ledger, append-only.
-- Stream ids `<ms>-<seq>` are kept as two BIGINTs so ORDER BY is stream order; the primary key
-- makes a re-archived entry a no-op (ON CONFLICT DO NOTHING).
CREATE TABLE ledger_entries (
    org       TEXT   NOT NULL,
    id_ms     BIGINT NOT NULL,
    id_seq    BIGINT NOT NULL,
    ts_ms     BIGINT NOT NULL,
    op        TEXT   NOT NULL,
    wallet    TEXT   NOT NULL,
    amount    BIGINT NOT NULL,   -- micro-units
    fields    JSONB  NOT NULL,   -- every field exactly as stored in Redis (strings)
    PRIMARY KEY (org, id_ms, id_seq)
);

CREATE INDEX ledger_entries_wallet ON ledger_entries (org, wallet, id_ms, id_seq);

-- Append-only: the archive never rewrites history.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER ledger_entries_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
