"""pytest plugin (entry point ``lss_platform``): real-server fixtures for every test tree.

Fixtures live in topic modules and are re-exported here so pytest discovers them.
"""

from lss_dev.fixtures_kube import *  # noqa: F403 - re-export fixtures for pytest discovery
from lss_dev.fixtures_nats import *  # noqa: F403 - re-export fixtures for pytest discovery
