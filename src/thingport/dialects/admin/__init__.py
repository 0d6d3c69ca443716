"""The operator's HTTP API: organizations, applications, thing models, master key."""
