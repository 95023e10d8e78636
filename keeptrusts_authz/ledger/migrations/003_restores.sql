-- Every `keeptrusts-authz restore` run: when, from which archived high-water mark, what it
-- rebuilt and which unarchived store entries it dropped (a restore never acts silently).
CREATE TABLE restores (
    id                BIGSERIAL   PRIMARY KEY,
    org               TEXT        NOT NULL,
    epoch             TEXT        NOT NULL,   -- the new epoch marker id
    high_ms           BIGINT      NOT NULL,   -- archived high-water mark (stream id)
    high_seq          BIGINT      NOT NULL,
    reason            TEXT        NOT NULL,   -- why the store was regressed ("forced")
    report            JSONB       NOT NULL,   -- counts, dropped entries, timing
    actor             TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
