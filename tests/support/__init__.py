"""Test helpers shared by the suites: a signed EnOS client, backends, a live server."""
