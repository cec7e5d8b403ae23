"""``python -m lss_sandbox_reconciler``: load the settings and run the service; nothing else."""

from __future__ import annotations

import sys

from lss_common.runtime import service
from lss_sandbox_reconciler import service as reconciler_service
from lss_sandbox_reconciler import settings as settings_module


def main() -> None:
    sys.exit(service.main(reconciler_service.build, settings_module.SandboxReconcilerSettings()))


if __name__ == "__main__":
    main()
