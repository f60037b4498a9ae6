-- A run's runtime, model and cached input tokens (docs/capability.md): the run
-- page shows what ran and what it used, split as the provider bills it.
ALTER TABLE conversations ADD COLUMN runtime TEXT;
ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE conversations ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
