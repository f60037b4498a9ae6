-- Health samples for the 24-hour charts of the Health page (issue 5).
-- One small row every health_sample_interval_s (5 min by default) written by the
-- API process's sampler (app/health/sampler.py), which also removes rows
-- older than health_sample_retention_days (7 by default), so the table stays
-- near 2 000 rows. No index besides the rowid: a scan of that many rows is
-- cheap, and every index would be one more page written per sample on the SD card.
CREATE TABLE health_samples (
    id INTEGER PRIMARY KEY,
    sampled_at TEXT NOT NULL,
    cpu_temperature_c REAL,
    memory_used_percent REAL NOT NULL CHECK (memory_used_percent BETWEEN 0 AND 100),
    disk_used_percent REAL NOT NULL CHECK (disk_used_percent BETWEEN 0 AND 100),
    load1 REAL CHECK (load1 IS NULL OR load1 >= 0),
    requests_per_minute REAL NOT NULL CHECK (requests_per_minute >= 0)
);
