"""Tools over the exact core: batch files (load, save, synthetic), batch reports and the sanity check,
the timing benchmark, the export of a runnable script and the multi-rank run. Pandas lives here, never
in the core."""
