-- One row per asset load (per run and partition range): what was staged,
-- loaded and quarantined, and how it ended. Operators and checks read it to see
-- which days are loaded and why a run failed.
CREATE TABLE dw_audit.load_log (
    load_id           bigserial PRIMARY KEY,
    run_id            text,
    asset             text NOT NULL,
    partition_start   date,
    partition_end     date,
    rows_staged       bigint,
    rows_loaded       bigint,
    rows_quarantined  bigint,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    status            text NOT NULL CHECK (status IN ('success', 'failure')),
    error             text
);

CREATE INDEX load_log_asset_partition_idx ON dw_audit.load_log (asset, partition_start);
