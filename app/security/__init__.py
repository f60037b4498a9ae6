"""Security controls: credentials, scopes, CSRF, audit, credential gate."""
