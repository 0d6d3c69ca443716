"""Use cases: they own transactions, enforce the rules and emit events. No wire formats here."""
