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
