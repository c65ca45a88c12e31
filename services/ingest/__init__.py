"""Ingest: touchpoints post events over HTTP; ingest validates, authorises, dedupes, hashes
phones, resolves identities and publishes to `touchpoint.events.v1`."""
