"""``python stuck_reconciler.py <stage>``: the sandbox reconciler whose warm starts stop short.

For test_warm_recovery.py, which kills it with SIGKILL. ``stage`` says where every warm start
of this process stops, forever:

- ``claimed``: after the WarmPod's CAS (and the writes beside it: finalizer, ServiceAccount,
  policies, Service), before the pod's adoption;
- ``adopted``: after the adoption, before the Sandbox's status (``Running``, ``warmPodRef``).

Everything else (cold starts, deletions) runs as in ``python -m lss_sandbox_reconciler``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from lss_common.kube import objects, writes
from lss_sandbox_reconciler import __main__ as entry
from lss_sandbox_reconciler import adopt


async def _forever() -> None:
    await asyncio.Event().wait()


def stop_after_claim() -> None:
    async def adopt_pod(*args: Any, **kwargs: Any) -> Any:
        await _forever()

    adopt.adopt_pod = adopt_pod


def stop_after_adoption() -> None:
    update_status = writes.update_status

    async def blocked(
        kube: Any, *, resource: Any, obj: Any, status: Any, decode: Any = None
    ) -> Any:
        if resource is objects.SANDBOX and getattr(status, "warm_pod_ref", None) is not None:
            await _forever()
        return await update_status(kube, resource=resource, obj=obj, status=status, decode=decode)

    writes.update_status = blocked


if __name__ == "__main__":
    stage = sys.argv.pop(1)  # the service's own main takes no other argument
    {"claimed": stop_after_claim, "adopted": stop_after_adoption}[stage]()
    entry.main()
