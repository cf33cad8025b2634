-- Fact days that a load changed outside its own asset: late payments completed by a rental load,
-- fact keys re-bound by a dimension load. The load SQL records them in its own transaction; the
-- loading asset then reports each as a materialization of that fact partition (so the marts of those
-- days refresh by automation) and deletes the rows it reported. Rows left by a crash between the
-- commit and the report are reported by the next load of the same asset.
CREATE TABLE dw_audit.pending_fixups (
    asset        text NOT NULL,        -- the fact whose day changed
    day          date NOT NULL,
    reason       text NOT NULL,
    changed_by   text NOT NULL,        -- the asset whose load changed it
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (changed_by, asset, day, reason)
);
