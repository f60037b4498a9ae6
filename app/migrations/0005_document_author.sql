-- Project documents are attributed in the prompt (who, when) like memory
-- entries: the actor who added each one. Rows from before stay NULL (shown as
-- "unknown").
ALTER TABLE project_documents ADD COLUMN created_by TEXT;
