"""Running the pipeline: all sources in one pass, the scheduler, backups."""
