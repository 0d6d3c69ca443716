"""The operator's web console at ``/console``: server-rendered pages (Jinja2, autoescaped) with htmx
for live status, signed in with the operator token (docs/console.md)."""
