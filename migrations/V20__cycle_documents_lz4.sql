-- A cycle's output and trace (about 5.6 and 3.2 kB of JSON) are compressed when the row is
-- written, in the cycle's own transaction. lz4 does that several times faster than the
-- default pglz for about the same size (pglz_compress was 2% of PostgreSQL's CPU at 10,000
-- tenants). Rows written before keep pglz; both read back the same.
ALTER TABLE cycles
    ALTER COLUMN output SET COMPRESSION lz4,
    ALTER COLUMN trace SET COMPRESSION lz4;
