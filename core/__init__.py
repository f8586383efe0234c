"""Infrastructure every domain uses, and no domain logic."""
