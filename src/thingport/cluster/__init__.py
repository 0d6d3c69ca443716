"""Several ``thingport serve`` nodes on one database: every node's events on every node's bus
(:mod:`.feed`), each node's heartbeat, online state and readiness (:mod:`.nodes`)."""
