"""The ops console (port 8005): the private-domain team's screens over the ops APIs.

It keeps no state of its own and reads no Redis key: every figure comes from the ops APIs over
HTTP, called with the signed-in user's own ops token. docs/console.md describes it.
"""
