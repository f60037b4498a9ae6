"""Who is asking: the request access dependencies (tokens, sessions, scopes) and the
record of refused requests. Above the auth store and the write transaction, below
every router."""
