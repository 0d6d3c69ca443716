"""The HTTP hooks an EMQX 5 cluster calls: authentication, authorization and client events."""
