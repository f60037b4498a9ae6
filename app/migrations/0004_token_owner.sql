-- Every API token has an owning human (the two-person checks compare people,
-- not token ids). Tokens made before this migration get the owner that can be
-- derived: the user who made them, or the owner of the token that made them
-- (a few levels); tokens made by the CLI before owners existed stay without
-- one, and what they propose cannot be approved (fail closed).
ALTER TABLE api_tokens ADD COLUMN owner_user_id INTEGER REFERENCES users (id);

UPDATE api_tokens
SET owner_user_id = (
    SELECT users.id FROM users WHERE 'user:' || users.username = api_tokens.created_by COLLATE NOCASE
)
WHERE created_by LIKE 'user:%';

UPDATE api_tokens
SET owner_user_id = (
    SELECT parent.owner_user_id FROM api_tokens AS parent
    WHERE 'token:' || parent.public_id = api_tokens.created_by
)
WHERE owner_user_id IS NULL AND created_by LIKE 'token:%';

UPDATE api_tokens
SET owner_user_id = (
    SELECT parent.owner_user_id FROM api_tokens AS parent
    WHERE 'token:' || parent.public_id = api_tokens.created_by
)
WHERE owner_user_id IS NULL AND created_by LIKE 'token:%';

UPDATE api_tokens
SET owner_user_id = (
    SELECT parent.owner_user_id FROM api_tokens AS parent
    WHERE 'token:' || parent.public_id = api_tokens.created_by
)
WHERE owner_user_id IS NULL AND created_by LIKE 'token:%';
