"""Scoring: each customer's intent score (the lead concentration matrix), per-model interest,
activity and membership points/growth. The domain is plan.py and intent.py."""
