# syntax=docker/dockerfile:1
# chattts-server in a container: `docker build -t chattts-server .` or `podman build --format
# docker -t chattts-server .` (the docker format keeps HEALTHCHECK; OCI has no field for it).
# `make image` builds it with podman from a locally made Debian base (tools/image-base.sh).
#
# Build arguments:
#   BASE_IMAGE       a Debian bookworm with Python 3.11 and its venv module (default
#                    python:3.11-slim-bookworm; `make image`: localhost/chattts-base:bookworm)
#   TORCH_INDEX_URL  where torch and torchaudio come from. The default, PyPI, has for x86_64 Linux
#                    the CUDA 12.8 build with its nvidia-* wheels: this is the GPU image (run it
#                    with --gpus all), ~8 GB. For a CPU-only image, much smaller:
#                    --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
#   EXTRAS           the project's optional dependency groups, comma-separated (default torch:
#                    the PyTorch engine; torch,postgres adds PostgreSQL voices; onnx instead of
#                    torch gives a torch-free image for --engine onnx with an export mounted)
#   APP_UID          the non-root user's uid (default 10001)
# Behind a TLS-intercepting proxy, give pip your CA bundle as the build secret `ca`:
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt   (tools/image.sh passes the host's)
#
# Run: mount the weights (the folder holding asset/) at /models, read-only; voices and anything
# downloaded live in /data. See README, "Run in a container".

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- 1. the project's wheel, built from the source tree alone ----------------------------------
FROM ${BASE_IMAGE} AS wheel
ARG EXTRAS=torch
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY deploy/container/requirements.py deploy/container/
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /tmp/build \
 && /tmp/build/bin/pip install --disable-pip-version-check -q --upgrade pip \
 && /tmp/build/bin/pip wheel --disable-pip-version-check -q --no-deps --wheel-dir /wheels . \
 && python3 deploy/container/requirements.py > /wheels/requirements.txt

# --- 2. the runtime: a clean base, the dependencies, then the wheel ----------------------------
FROM ${BASE_IMAGE} AS runtime
ARG TORCH_INDEX_URL=https://pypi.org/simple
ARG APP_UID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHATTTS_SERVER_DATA_DIR=/data \
    HF_HOME=/data/huggingface \
    TOKENIZERS_PARALLELISM=false \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# The dependencies: a layer of their own that only a change of pyproject's dependency list
# rebuilds (the requirements file is the same bytes whatever else changed). Their wheels are kept
# in a build cache mount, one wheelhouse per torch index, never in the image: `pip wheel` fetches
# only what the wheelhouse lacks (pip's own HTTP cache is useless behind proxies that strip
# caching headers), then pip installs from the wheelhouse alone.
COPY --from=wheel /wheels/requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=cache,target=/var/cache/wheelhouse,sharing=locked --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && house=/var/cache/wheelhouse/$(echo "$TORCH_INDEX_URL" | sha256sum | cut -c1-16) \
 && python3 -m venv /opt/venv \
 && pip install --disable-pip-version-check -q --upgrade pip \
 && pip wheel --disable-pip-version-check -q --wheel-dir "$house" --index-url "$TORCH_INDEX_URL" \
      $(grep -E '^torch(audio)?==' /tmp/requirements.txt) \
 && pip wheel --disable-pip-version-check -q --wheel-dir "$house" --find-links "$house" \
      -r /tmp/requirements.txt \
 && pip install --disable-pip-version-check -q --no-index --find-links "$house" \
      -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY --from=wheel /wheels/*.whl /tmp/wheels/
COPY deploy/container/entrypoint.sh /usr/local/bin/chattts-entrypoint
COPY deploy/container/healthcheck.py /usr/local/bin/chattts-healthcheck
# The wheel without dependencies (all there), then no installer left in the image: pip goes,
# and nothing under /root or /tmp stays.
RUN pip install --disable-pip-version-check -q --no-deps --no-cache-dir /tmp/wheels/*.whl \
 && pip uninstall --disable-pip-version-check -q -y pip \
 && rm -rf /tmp/wheels /root/.cache \
 && chmod 0755 /usr/local/bin/chattts-entrypoint /usr/local/bin/chattts-healthcheck \
 && useradd --no-log-init --uid "$APP_UID" --gid 0 --home-dir /home/chattts --create-home \
      --shell /usr/sbin/nologin chattts \
 && mkdir -p /models /data \
 && chown "$APP_UID:0" /data \
 && chmod 0775 /data \
 && chattts-server --help >/dev/null

USER ${APP_UID}
WORKDIR /home/chattts
VOLUME ["/models", "/data"]
EXPOSE 9700
STOPSIGNAL SIGTERM
# /readyz is 200 once the model is loaded and warmed up (plain Python: no curl in the image).
# The start period covers loading the official weights on a CPU; a hub download may take longer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["chattts-healthcheck"]
ENTRYPOINT ["chattts-entrypoint"]
CMD ["serve"]
