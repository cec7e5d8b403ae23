"""``python -m lss_pool_manager`` (``llmsafespace-pool-manager``): load settings, run it."""

from __future__ import annotations

import sys

from lss_common.observability import tracing
from lss_common.runtime import service
from lss_pool_manager import service as pool_service
from lss_pool_manager import settings as settings_module


def main() -> None:
    settings = settings_module.PoolManagerSettings()
    tracing.configure_tracing(settings.tracing, service_name=settings.service_name)
    sys.exit(service.main(pool_service.build, settings))


if __name__ == "__main__":
    main()
