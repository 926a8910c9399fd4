-- V27's revenue_os.outbox_id() was a SQL function that looked the outbox's sequence up
-- (pg_get_serial_sequence) on every call, and a SQL function is parsed and planned again in
-- every statement that calls it: about 56 µs of each cycle's insert of its actions. In
-- PL/pgSQL it keeps its plan for the session, and the sequence's name is looked up here,
-- once: about 1.5 µs a call. CREATE OR REPLACE keeps the worker's EXECUTE grant.
DO $$
BEGIN
    EXECUTE format(
        $f$CREATE OR REPLACE FUNCTION revenue_os.outbox_id() RETURNS bigint
               LANGUAGE plpgsql VOLATILE SECURITY DEFINER
               SET search_path = pg_catalog, pg_temp
               AS $b$BEGIN RETURN nextval(%L::regclass); END $b$
        $f$,
        pg_get_serial_sequence('public.outbox', 'id'));
END $$;
