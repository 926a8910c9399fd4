-- The action-status gauge counted every row of `actions` (`GROUP BY status`) at every scrape
-- of every worker. One morning of 100,000 tenants adds about 0.7 GB to `actions`, and
-- retention keeps 400 days of it. The statuses somebody acts on stay exact: they are the
-- work in flight, read from `actions_status`. The rest (`applied` and the ended ones) are
-- exact while the planner puts `actions` at no more than 1,000,000 rows; past that they are
-- estimated from a sample of about 2,000 pages (16 MB), whatever the table's size. A sample,
-- not `pg_stats`: that view hides the statistics of a table whose row-level security applies
-- to its reader, as it does to this function's owner.
CREATE OR REPLACE FUNCTION revenue_os.action_status_counts() RETURNS TABLE (status text, n bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    #variable_conflict use_column
    DECLARE
        exact_up_to CONSTANT float8 := 1000000;
        sample_pages CONSTANT float8 := 2000;
        -- Bounded by the work in flight, and what an operator acts on: V17's
        -- `action_is_live` but `applied`. Listed, not derived: `action_is_live(status) AND
        -- status <> 'applied'` scans `actions_status` over every applied entry and filters
        -- them out after.
        live CONSTANT text[] := ARRAY['pending_approval', 'pending', 'published',
                                      'acknowledged', 'reverting', 'revert_failed'];
        -- The planner's figures from the last VACUUM or ANALYZE (-1 rows before the first).
        total float8;
        pages float8;
        pct float4;
    BEGIN
        SELECT c.reltuples, c.relpages INTO total, pages FROM pg_class c
         WHERE c.oid = 'public.actions'::regclass;
        PERFORM set_config('revenue_os.sweep', 'on', true);
        IF total <= exact_up_to THEN
            RETURN QUERY SELECT a.status, count(*) FROM public.actions a GROUP BY a.status;
        ELSE
            -- SYSTEM takes each page with this chance, so the counts scale back by its inverse.
            pct := least(100, 100 * sample_pages / greatest(pages, 1));
            RETURN QUERY
                SELECT a.status, count(*) FROM public.actions a
                 WHERE a.status = ANY (live) GROUP BY a.status
                UNION ALL
                SELECT a.status, round(count(*) * 100 / pct)::bigint
                  FROM public.actions a TABLESAMPLE SYSTEM (pct)
                 WHERE a.status <> ALL (live) GROUP BY a.status;
        END IF;
        PERFORM set_config('revenue_os.sweep', 'off', true);
    END $$;
