# One image per service: docker build -f deploy/docker/service.Dockerfile \
#   --build-arg SERVICE=watcher --build-arg MODULE=lss_watcher -t llmsafespace/watcher .
# The service's distribution and its locked dependencies only (no dev tools), non-root.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv
WORKDIR /src
# What the workspace's lock needs, nothing else (.dockerignore keeps out the rest: a
# kubeconfig next to docker-compose.yml, .git, local environments).
COPY pyproject.toml uv.lock ./
COPY libs/common libs/common
COPY tools/devtools tools/devtools
COPY services services
ARG SERVICE
RUN uv sync --frozen --no-dev --no-editable --package "llmsafespace-${SERVICE}"

FROM python:3.11-slim
ARG MODULE
ENV PATH=/app/.venv/bin:$PATH LSS_MODULE=${MODULE}
# Buffers of 128 KiB and more (each API server connection's 256 KiB TLS read buffer) are
# mmap'ed and given back when freed; glibc's default would keep the high-water mark of a
# burst of connections resident for good (bench/pool_manager_memory.py).
ENV MALLOC_MMAP_THRESHOLD_=131072
COPY --from=build /src/.venv /app/.venv
USER 65532:65532
EXPOSE 8081
# The container's args reach the service (the chart's topology Jobs pass --declare-topology).
ENTRYPOINT ["sh", "-c", "exec python -m \"$LSS_MODULE\" \"$@\"", "lss"]
