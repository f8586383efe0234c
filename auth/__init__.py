"""The OAuth 2 authorization server: clients bound to organizations, hashed credentials, scopes."""
