-- dw.ensure_month_partitions(parent, from_ts, to_ts): create the missing monthly
-- partitions <parent>_pYYYY_MM covering [from_ts, to_ts), in UTC months, and
-- return how many were created.
--
-- Why a database function rather than loader code: several runs (backfills of
-- different days) may load concurrently, and the existence check plus CREATE must
-- be serialized per parent. A transaction-scoped advisory lock does that; it is
-- released at commit, when the new partitions become visible to the next caller.
-- Call it in READ COMMITTED (the default): each statement after the lock then
-- sees partitions committed by a caller that held the lock before us.
--
-- Month boundaries are UTC whatever the session TimeZone, so a given instant
-- always lands in the same partition.
--
-- If the DEFAULT partition already holds rows of a month being created,
-- PostgreSQL would refuse the CREATE with a generic constraint error; we check
-- first and raise a message naming the parent and the month, since those rows
-- must be moved out (detach/reinsert) deliberately.
CREATE FUNCTION dw.ensure_month_partitions(parent text, from_ts timestamptz, to_ts timestamptz)
RETURNS int
LANGUAGE plpgsql
AS $fn$
DECLARE
    parent_oid   oid;
    parent_nsp   text;
    parent_rel   text;
    parent_kind  "char";
    qualified    text;
    key_column   text;
    default_oid  oid;
    month_start  timestamp;          -- UTC wall-clock month start
    last_instant timestamp;          -- UTC wall-clock of to_ts
    lower_bound  timestamptz;
    upper_bound  timestamptz;
    part_name    text;
    existing     oid;
    created      int := 0;
    has_rows     boolean;
BEGIN
    IF parent IS NULL OR from_ts IS NULL OR to_ts IS NULL THEN
        RAISE EXCEPTION 'ensure_month_partitions: parent, from_ts and to_ts must not be NULL';
    END IF;

    parent_oid := to_regclass(parent);
    IF parent_oid IS NULL THEN
        RAISE EXCEPTION 'ensure_month_partitions: table % does not exist', parent
            USING ERRCODE = 'undefined_table';
    END IF;
    SELECT n.nspname, c.relname, c.relkind INTO parent_nsp, parent_rel, parent_kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = parent_oid;
    IF parent_kind <> 'p' THEN
        RAISE EXCEPTION 'ensure_month_partitions: % is not a partitioned table', parent
            USING ERRCODE = 'wrong_object_type';
    END IF;
    qualified := format('%I.%I', parent_nsp, parent_rel);

    -- Serialize creators of this parent until our transaction ends.
    PERFORM pg_advisory_xact_lock(hashtext(qualified));

    -- The (single-column) range key, for the DEFAULT-partition check.
    SELECT a.attname INTO key_column
    FROM pg_partitioned_table pt
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
    WHERE pt.partrelid = parent_oid AND pt.partstrat = 'r' AND pt.partnatts = 1;
    IF key_column IS NULL THEN
        RAISE EXCEPTION 'ensure_month_partitions: % is not range-partitioned on a single column', qualified;
    END IF;

    SELECT pt.partdefid INTO default_oid
    FROM pg_partitioned_table pt
    WHERE pt.partrelid = parent_oid AND pt.partdefid <> 0;

    month_start  := date_trunc('month', from_ts AT TIME ZONE 'UTC');
    last_instant := to_ts AT TIME ZONE 'UTC';

    WHILE month_start < last_instant LOOP
        lower_bound := month_start AT TIME ZONE 'UTC';
        upper_bound := (month_start + interval '1 month') AT TIME ZONE 'UTC';
        part_name   := parent_rel || '_p' || to_char(month_start, 'YYYY_MM');

        SELECT c.oid INTO existing
        FROM pg_class c
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = parent_nsp)
          AND c.relname = part_name;

        IF existing IS NOT NULL THEN
            IF NOT EXISTS (SELECT 1 FROM pg_inherits i
                           WHERE i.inhrelid = existing AND i.inhparent = parent_oid) THEN
                RAISE EXCEPTION 'ensure_month_partitions: %.% exists but is not a partition of %',
                    quote_ident(parent_nsp), quote_ident(part_name), qualified
                    USING ERRCODE = 'duplicate_table';
            END IF;
        ELSE
            IF default_oid IS NOT NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= $1 AND %I < $2)',
                               default_oid::regclass, key_column, key_column)
                   INTO has_rows
                   USING lower_bound, upper_bound;
                IF has_rows THEN
                    RAISE EXCEPTION 'ensure_month_partitions: cannot create partition % of % for month %: the default partition % holds rows of that month',
                        part_name, qualified, to_char(month_start, 'YYYY-MM'), default_oid::regclass
                        USING ERRCODE = 'check_violation',
                              HINT = 'Move those rows out of the default partition (delete and re-insert them after creating the partition).';
                END IF;
            END IF;

            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                           parent_nsp, part_name, qualified,
                           to_char(month_start, 'YYYY-MM-DD') || ' 00:00+00',
                           to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00+00');
            created := created + 1;
        END IF;

        existing    := NULL;
        month_start := month_start + interval '1 month';
    END LOOP;

    RETURN created;
END;
$fn$;

COMMENT ON FUNCTION dw.ensure_month_partitions(text, timestamptz, timestamptz) IS
    'Create missing monthly (UTC) partitions <parent>_pYYYY_MM covering [from_ts, to_ts); returns how many were created. Serialized per parent by an advisory lock.';
