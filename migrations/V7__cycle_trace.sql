-- The kernel's reasoning trace of a cycle (the text `kernel --explain` prints), for the
-- operator console's cycle page. NULL for cycles recorded before it was kept, and for cycles
-- that never reached the kernel (skipped, or rejected by the input checks).
ALTER TABLE cycles ADD COLUMN trace text;
