-- Schedules: recurring tasks from a cron expression in a time zone
-- (docs/schedules.md). The task a firing makes is described by the schedule's
-- own columns (a template) and goes through pre-flight like any task.
CREATE TABLE schedules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    max_runs INTEGER CHECK (max_runs IS NULL OR max_runs >= 1),
    missed_policy TEXT NOT NULL DEFAULT 'run_once' CHECK (missed_policy IN ('run_once', 'skip')),
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'ended')),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    project_id INTEGER REFERENCES projects (id),
    priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    required_tools TEXT NOT NULL DEFAULT '[]',
    needs_shell INTEGER NOT NULL DEFAULT 0 CHECK (needs_shell IN (0, 1)),
    -- every due time up to and including this moment has been handled (fired,
    -- refused, skipped, or passed while paused); the next firing is after it
    handled_through TEXT NOT NULL,
    -- tasks made by due times (run-now firings do not count towards max_runs)
    runs INTEGER NOT NULL DEFAULT 0,
    ended_reason TEXT,
    created_by TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX schedules_status ON schedules (status) WHERE deleted_at IS NULL;

-- The history of firings. A firing row is written in the same transaction as
-- the task it makes (or its refusal), and the unique index makes a due time of
-- a schedule fire once, whatever crashes or how many workers.
CREATE TABLE schedule_firings (
    id INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id),
    due_at TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('due', 'caught_up', 'run_now')),
    outcome TEXT NOT NULL CHECK (outcome IN ('created', 'refused', 'skipped')),
    task_id INTEGER REFERENCES tasks (id),
    missed INTEGER NOT NULL DEFAULT 0 CHECK (missed >= 0),
    detail TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    fired_at TEXT NOT NULL
);
CREATE UNIQUE INDEX schedule_firings_once ON schedule_firings (schedule_id, due_at);
