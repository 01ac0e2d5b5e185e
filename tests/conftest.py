"""Settings for every test session.

Property tests are judged by what they find, never by how long they take: hypothesis'
default deadline (200 ms an example) and its ``too_slow`` health check are timed
assertions, which an example that passes can overrun on a loaded 2-core CI machine
(a preempted example fails the run as "Unreliable test timings"). The profile is loaded
here, before the test modules are imported, so that their ``@settings(...)`` inherit it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile("apssh", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("apssh")

import os  # noqa: E402

# A developer's own apssh config file and APSSH_* defaults must not change what the tests
# run (APSSH_CONFIG="" means no config file); tests of those set their own.
os.environ["APSSH_CONFIG"] = ""
for _name in ("APSSH_WINDOW", "APSSH_TIMEOUT", "APSSH_CONNECT_TIMEOUT", "APSSH_KNOWN_HOSTS"):
    os.environ.pop(_name, None)
os.environ.pop("APSSH_USER", None)
