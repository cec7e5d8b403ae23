"""Connect to the Kubernetes API server: build a kubernetes_asyncio ApiClient, close it cleanly.

Credentials are looked up in a fixed order, the first that applies wins:

1. ``settings.kube.kubeconfig`` (an explicit path);
2. ``$KUBECONFIG`` (one path or a ``:``-separated list, merged as kubectl does);
3. in-cluster service-account credentials (``KUBERNETES_SERVICE_HOST`` is set);
4. ``~/.kube/config``.

The environment is read when ``create_api_client`` runs, not at import (kubernetes_asyncio
reads ``$KUBECONFIG`` at import time, which tests and tools that set it later would miss).
Every configuration is private to its ApiClient; the library's process-wide default is never
touched, so two clients for two clusters can coexist.

``KubeConnection`` is the service component that owns the client for the process's life and
reports readiness from the API server's own ``/readyz``. This module must not perform object
operations (``objects.py`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import os
import pathlib
import urllib.parse
import urllib.request
from collections.abc import Mapping

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from lss_common import errors
from lss_common import settings as settings_module
from lss_common.logic import revisions
from lss_common.observability import metrics as metrics_module

logger = logging.getLogger(__name__)

_SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"


class CredentialSource(enum.StrEnum):
    """Where the credentials of a client came from (logged at start)."""

    EXPLICIT = "explicit"
    ENVIRONMENT = "environment"
    IN_CLUSTER = "in-cluster"
    DEFAULT_FILE = "default-file"


@dataclasses.dataclass(frozen=True, slots=True)
class Kube:
    """What every object operation needs: the ApiClient and the request policy."""

    api: k8s_client.ApiClient
    request_timeout_seconds: float
    metrics: metrics_module.KubeMetrics
    written: revisions.WrittenRevisions | None = None
    """When set, every successful write records the resourceVersion it produced."""


def choose_source(
    settings: settings_module.KubeSettings,
    *,
    environ: Mapping[str, str],
    home: pathlib.Path,
) -> tuple[CredentialSource, str | None]:
    """Which credentials to use and, for kubeconfig sources, the path (list) to read."""
    if settings.kubeconfig:
        return CredentialSource.EXPLICIT, settings.kubeconfig
    if environ.get("KUBECONFIG"):
        return CredentialSource.ENVIRONMENT, environ["KUBECONFIG"]
    if environ.get(_SERVICE_HOST_ENV):
        return CredentialSource.IN_CLUSTER, None
    default = home / ".kube" / "config"
    if default.exists():
        return CredentialSource.DEFAULT_FILE, str(default)
    raise errors.LssError(
        "no Kubernetes credentials: set kube.kubeconfig (LSS_KUBE__KUBECONFIG) or $KUBECONFIG, "
        f"run in a pod, or create {default}"
    )


async def create_api_client(settings: settings_module.KubeSettings) -> k8s_client.ApiClient:
    """An ApiClient for the cluster the settings and environment point at (see module doc)."""
    source, path = choose_source(settings, environ=os.environ, home=pathlib.Path.home())
    configuration = k8s_client.Configuration()
    try:
        if source is CredentialSource.IN_CLUSTER:
            # kubernetes_asyncio has no annotation on this one function.
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(
                config_file=path,
                context=settings.context,
                client_configuration=configuration,
                # Never write refreshed tokens back into the user's kubeconfig.
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError) as error:
        raise errors.LssError(f"cannot load Kubernetes credentials ({source}): {error}") from error
    logger.info(
        "kubernetes credentials loaded",
        extra={"source": str(source), "host": configuration.host, "context": settings.context},
    )
    configuration.connection_pool_maxsize = settings.max_connections
    api = k8s_client.ApiClient(configuration=configuration)
    await _read_environment_once(api, host=configuration.host)
    return api


async def _read_environment_once(api: k8s_client.ApiClient, *, host: str | None) -> None:
    """Read the proxy environment once instead of on every request.

    kubernetes_asyncio builds its aiohttp session with ``trust_env=True``, so aiohttp reads
    ``~/.netrc`` and the proxy variables for *every* request, each time in a worker thread
    (measured under load: about a third of the sandbox reconciler's CPU). The proxy for the
    API server is resolved here, once (``$HTTPS_PROXY``/``$HTTP_PROXY``, ``$NO_PROXY``
    honoured); netrc is not consulted (credentials come from the kubeconfig or the service
    account).
    """
    rest = api.rest_client
    if not rest.proxy and host:
        found = await asyncio.to_thread(_env_proxy, host)
        if found is not None:
            rest.proxy = found
    rest.pool_manager._trust_env = False


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or urllib.request.proxy_bypass(parsed.netloc or parsed.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parsed.scheme) or None


class KubeConnection:
    """Service component owning the ApiClient; ready while the API server's /readyz is 200."""

    def __init__(
        self,
        settings: settings_module.KubeSettings,
        *,
        metrics: metrics_module.KubeMetrics,
        name: str = "kube",
        written: revisions.WrittenRevisions | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._name = name
        self._written = written
        self._kube: Kube | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def kube(self) -> Kube:
        """The handle for ``objects``/``writes`` calls; only between start and stop."""
        if self._kube is None:
            raise RuntimeError("the Kubernetes connection is not started")
        return self._kube

    async def start(self) -> None:
        api = await create_api_client(self._settings)
        self._kube = Kube(
            api=api,
            request_timeout_seconds=self._settings.request_timeout_seconds,
            metrics=self._metrics,
            written=self._written,
        )

    async def stop(self) -> None:
        if self._kube is not None:
            kube, self._kube = self._kube, None
            await kube.api.close()

    async def is_ready(self) -> bool:
        if self._kube is None:
            return False
        return await is_api_server_ready(self._kube)


async def is_api_server_ready(kube: Kube) -> bool:
    """Whether the API server answers ``/readyz`` with 200 within the request timeout.

    ``/readyz`` is readable by every client (the ``system:public-info-viewer`` role), so the
    check needs no RBAC of its own.
    """
    try:
        async with asyncio.timeout(kube.request_timeout_seconds):
            response = await kube.api.call_api(
                "/readyz",
                "GET",
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
            async with response:
                await response.read()
                return bool(response.status == 200)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        logger.debug("api server readiness check failed", extra={"error": error})
        return False
