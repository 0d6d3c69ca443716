"""The budget of every fuzz test, HTTP and MQTT alike (docs/security.md, "Fuzzing").

By default (CI) the cases are few and the same on every run (Hypothesis ``derandomize``), so a red
CI run is reproducible; ``HYPOTHESIS_PROFILE=long`` (``./run fuzz --long``) runs 50 times as many,
new ones each run, and ``FUZZ_EXAMPLES=n`` runs n per test, new ones each run.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES = os.environ.get("FUZZ_EXAMPLES")


def budget(ci: int) -> settings:
    """Hypothesis settings (a decorator) for ``ci`` cases per test in CI, more on request (above).

    No deadline and no health checks: the cases drive a server (function-scoped fixtures, slow
    first calls), and a failure is what the test asserts, not how long it took.
    """
    fixed = not LONG and not EXAMPLES
    return settings(max_examples=int(EXAMPLES) if EXAMPLES else ci * 50 if LONG else ci, deadline=None,
                    derandomize=fixed, database=None, suppress_health_check=list(HealthCheck), print_blob=not fixed)
