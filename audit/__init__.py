"""The tamper-evident trail of every access: recorder, hash chain, checkpoints, verification.

Depends on `core` alone; every domain calls `audit.record(...)`.
"""

from audit.recorder import record, record_operator, record_told

__all__ = ["record", "record_operator", "record_told"]
