"""Entities, identifiers, validators and the one error catalogue. No I/O here."""
