-- The orchestration model: agents, projects, missions, tasks, conversations,
-- memory, usage, trigger rules, policies, notifications, escalations, events.
CREATE TABLE agents (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'retired')),
    shell_access INTEGER NOT NULL DEFAULT 0 CHECK (shell_access IN (0, 1)),
    allowed_tools TEXT NOT NULL DEFAULT '[]',
    profile TEXT NOT NULL DEFAULT 'demo',
    quota_tokens_per_day INTEGER NOT NULL,
    quota_cost_usd_per_day REAL NOT NULL,
    quota_runs_per_day INTEGER NOT NULL,
    think_interval_minutes INTEGER,
    identity_version INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE UNIQUE INDEX agents_name ON agents (name) WHERE deleted_at IS NULL;

CREATE TABLE agent_identities (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    version INTEGER NOT NULL,
    text TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (agent_id, version)
);

CREATE TABLE agent_memory (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    content TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX agent_memory_agent ON agent_memory (agent_id, id);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE UNIQUE INDEX projects_name ON projects (name) WHERE deleted_at IS NULL;

CREATE TABLE project_documents (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE TABLE missions (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    goal TEXT NOT NULL,
    steps TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'proposed' CHECK (status IN
        ('proposed', 'approved', 'rejected', 'running', 'succeeded', 'failed', 'cancelled')),
    proposed_by TEXT NOT NULL,
    bound_cost_usd REAL NOT NULL,
    bound_steps INTEGER NOT NULL,
    bound_step_minutes INTEGER NOT NULL,
    bound_tokens INTEGER NOT NULL,
    spent_cost_usd REAL NOT NULL DEFAULT 0,
    spent_tokens INTEGER NOT NULL DEFAULT 0,
    decided_by TEXT,
    decided_at TEXT,
    decision_comment TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX missions_status ON missions (status);

CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    mission_id INTEGER REFERENCES missions (id),
    mission_step INTEGER,
    project_id INTEGER REFERENCES projects (id),
    priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
        ('queued', 'in_progress', 'succeeded', 'failed', 'cancelled', 'blocked')),
    required_tools TEXT NOT NULL DEFAULT '[]',
    needs_shell INTEGER NOT NULL DEFAULT 0 CHECK (needs_shell IN (0, 1)),
    due_at TEXT,
    idempotency_key TEXT,
    created_by TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX tasks_status ON tasks (status, id);
CREATE INDEX tasks_agent ON tasks (agent_id, status);
CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE task_dependencies (
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    depends_on INTEGER NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (task_id, depends_on)
);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    status TEXT NOT NULL DEFAULT 'QUEUED' CHECK (status IN
        ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    lease_owner TEXT,
    lease_expires_at TEXT,
    heartbeat_at TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    reason TEXT,
    transcript TEXT NOT NULL DEFAULT '',
    truncated INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    exit_code INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX conversations_status ON conversations (status, id);
CREATE INDEX conversations_task ON conversations (task_id);
-- In-flight guard (F11): at most one queued or running conversation per task.
CREATE UNIQUE INDEX conversations_one_active ON conversations (task_id)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');

CREATE TABLE usage_ledger (
    id INTEGER PRIMARY KEY,
    agent_id INTEGER NOT NULL REFERENCES agents (id),
    mission_id INTEGER REFERENCES missions (id),
    conversation_id INTEGER REFERENCES conversations (id),
    day TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX usage_agent_day ON usage_ledger (agent_id, day);

CREATE TABLE rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    conditions TEXT NOT NULL,
    actions TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    approval TEXT NOT NULL DEFAULT 'not_needed' CHECK (approval IN
        ('not_needed', 'pending', 'approved')),
    approved_by TEXT,
    approved_at TEXT,
    max_firings_per_hour INTEGER NOT NULL DEFAULT 10,
    created_by TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE TABLE rule_firings (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER NOT NULL REFERENCES rules (id),
    event_id INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    fired_at TEXT NOT NULL
);
CREATE INDEX rule_firings_rule ON rule_firings (rule_id, fired_at);

CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    category TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
    read_at TEXT,
    webhook_state TEXT NOT NULL DEFAULT 'none' CHECK (webhook_state IN
        ('none', 'pending', 'delivered', 'failed')),
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_next_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX notifications_unread ON notifications (read_at, id);
CREATE INDEX notifications_webhook ON notifications (webhook_state, webhook_next_at);

CREATE TABLE escalations (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id INTEGER,
    reason TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    acknowledged_by TEXT,
    acknowledged_at TEXT,
    resolved_by TEXT,
    resolved_at TEXT,
    resolution_comment TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX escalations_status ON escalations (status, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id INTEGER,
    actor TEXT NOT NULL,
    min_scope TEXT NOT NULL DEFAULT 'read' CHECK (min_scope IN ('read', 'operate', 'admin')),
    rule_depth INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE worker_heartbeats (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{}'
);
