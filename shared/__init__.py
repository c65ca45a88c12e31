"""The project's shared library: schemas, settings, and Kafka/Redis/metrics/logging helpers.

Only what two or more services really share lives here.
"""
