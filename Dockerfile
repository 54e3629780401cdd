# syntax=docker/dockerfile:1
#
# The production image (SPEC §10). The builder stage installs exactly
# requirements/runtime.lock (hashes checked, binary wheels only: nothing is
# compiled) and the project's wheel into a virtualenv without pip, trims it
# (tools/image/slim.py) and compiles its bytecode; the final stage gets only
# that virtualenv, removes the shells and pip commands, and runs as a numeric
# non-root user (so the kubelet can verify runAsNonRoot).
#
#   docker build -t task-pod-webhook:0.1.0 .
#   docker run --rm -p 8443:8443 task-pod-webhook:0.1.0   # dev certificate, default policy
#
# Behind a TLS-inspecting proxy, give pip the CA bundle as a build secret:
#   docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt ...
# (`make image-test` builds it so with podman on a stand-in base: tools/image/).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/build.lock requirements/runtime.lock ./requirements/
# /opt/build: the locked build backend and the pip that installs; the image's
# virtualenv gets no pip, setuptools or wheel of its own.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python -m venv /opt/build \
 && python -m venv --without-pip /opt/task-pod-webhook \
 && /opt/build/bin/pip install --quiet --require-hashes --no-deps --only-binary=:all: \
        -r requirements/build.lock \
 && /opt/build/bin/pip --python /opt/task-pod-webhook/bin/python install --quiet \
        --require-hashes --no-deps --only-binary=:all: --no-compile -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY webhook ./webhook
COPY tools/image/slim.py ./
RUN /opt/build/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/build/bin/pip --python /opt/task-pod-webhook/bin/python install --quiet \
        --no-deps --no-index --no-compile /wheels/*.whl \
 && /opt/task-pod-webhook/bin/python -I slim.py \
        /opt/task-pod-webhook/lib/python3.11/site-packages

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="task-pod-webhook" \
      org.opencontainers.image.description="Kubernetes admission webhook for Airflow task pods" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/task-pod-webhook /opt/task-pod-webhook
# The server starts no process: no shell and no pip command stay in the image
# (debug with an ephemeral container: `kubectl debug`). Exec form, the last RUN.
RUN ["/bin/rm", "-f", "/usr/bin/sh", "/usr/bin/dash", "/usr/bin/bash", "/usr/bin/rbash", \
     "/bin/sh", "/bin/dash", "/bin/bash", "/bin/rbash", \
     "/usr/local/bin/pip", "/usr/local/bin/pip3", "/usr/local/bin/pip3.11", \
     "/usr/bin/pip", "/usr/bin/pip3", "/usr/bin/pip3.11"]
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
