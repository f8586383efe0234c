"""Family consent records, revocation, and the decision engine (`policy.py`)."""
