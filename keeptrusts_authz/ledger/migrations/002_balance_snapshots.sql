-- Checkpoints for the audit: every wallet of an org as replayed up to and including one archived
-- stream id, plus the reservations still open there. The audit starts from the newest one.
CREATE TABLE balance_snapshots (
    org              TEXT        NOT NULL,
    upto_ms          BIGINT      NOT NULL,
    upto_seq         BIGINT      NOT NULL,
    entries          BIGINT      NOT NULL,   -- ledger entries replayed from genesis
    wallets          JSONB       NOT NULL,   -- {wallet: {balance, reserved, allocated_total, spent_total}}
    open_reservations JSONB      NOT NULL,   -- {reservation: [wallet, amount]}
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org, upto_ms, upto_seq)
);
