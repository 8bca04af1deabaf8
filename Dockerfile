# syntax=docker/dockerfile:1
# Stage 1: the browser packages (three.js) from npm, without dev dependencies.
FROM node:20-bookworm-slim AS web-assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Stage 2: build Haven's wheel.
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /build
COPY pyproject.toml README.md ./
COPY therapy therapy
COPY environments environments
COPY groups groups
COPY media media
COPY web web
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Stage 3: the runtime image.
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home /data --shell /usr/sbin/nologin haven \
    && mkdir -p /data /opt/haven && chown haven:haven /data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --from=web-assets /build/node_modules/three /opt/haven/node_modules/three
ENV HAVEN_NODE_MODULES=/opt/haven/node_modules \
    PYTHONUNBUFFERED=1
USER haven
VOLUME ["/data"]
# 8080/tcp: pages, API and signaling (put a TLS proxy in front). 40000-40199/udp: voice.
# On Docker's default bridge network the container only knows its private address, so also
# pass --public-address <the host's public IPv4> (docker run ... haven haven serve ...).
EXPOSE 8080/tcp 40000-40199/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
# Put the key file on another volume in production: --key-file /run/secrets/haven.key
CMD ["haven", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data", \
     "--udp-port-range", "40000-40199"]
