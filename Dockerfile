# syntax=docker/dockerfile:1
#
# The production image (SPEC §10). The builder stage builds the wheel and
# installs it, with its dependencies, into a virtualenv; the final stage gets
# only that virtualenv: no compilers, no build tools, no pip caches, and a
# numeric non-root user (so the kubelet can verify runAsNonRoot).
#
#   docker build -t task-pod-webhook:0.1.0 .
#   docker run --rm -p 8443:8443 task-pod-webhook:0.1.0   # dev certificate, default policy

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG VERSION=0.1.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
# The `fast` extra (orjson, uvloop) ships binary wheels: nothing is compiled.
RUN python -m venv /opt/task-pod-webhook \
 && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/task-pod-webhook/bin/pip install --no-cache-dir --find-links /wheels \
        "task-pod-webhook[fast]==${VERSION}"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="task-pod-webhook" \
      org.opencontainers.image.description="Kubernetes admission webhook for Airflow task pods" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/task-pod-webhook /opt/task-pod-webhook
# TPW_HOST: listen on all interfaces in a container (the CLI's default is
# loopback). WORKDIR /tmp: where a bare `serve` writes its dev certificate;
# the Deployment mounts an emptyDir there and passes real certificates.
ENV PATH=/opt/task-pod-webhook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TPW_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8443 9090
ENTRYPOINT ["task-pod-webhook"]
CMD ["serve"]
