"""``python -m lss_pool_manager`` (``llmsafespace-pool-manager``): load settings, run it."""

from __future__ import annotations

import sys

from lss_common.runtime import service
from lss_pool_manager import service as pool_service
from lss_pool_manager import settings as settings_module


def main() -> None:
    # Logging and tracing are configured by service.main, once (configured here too, the
    # provider installed first won and the one main shut down at exit was never used).
    sys.exit(service.main(pool_service.build, settings_module.PoolManagerSettings()))


if __name__ == "__main__":
    main()
