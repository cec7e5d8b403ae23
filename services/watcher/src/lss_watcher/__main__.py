"""``python -m lss_watcher`` / ``llmsafespace-watcher``: load the settings and run the service."""

from __future__ import annotations

import sys

from lss_common.runtime import service
from lss_watcher import service as watcher_service
from lss_watcher import settings as settings_module


def main() -> None:
    sys.exit(service.main(watcher_service.build, settings_module.WatcherSettings()))


if __name__ == "__main__":
    main()
