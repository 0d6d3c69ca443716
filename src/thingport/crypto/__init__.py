"""Secret generation, encryption at rest, request signing schemes and secrets for callers."""
