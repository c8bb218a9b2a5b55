"""The four layers of SPEC §6, one module each: sticky, command, prefix, routing.

Each layer owns its namespace and does not consult the next; only the routing layer reads the routes table. The
pipeline (``kanmon.gateway.pipeline``) runs them in that order on every inbound message.
"""
