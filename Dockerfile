# syntax=docker/dockerfile:1
#
# falco-router image: a multi-stage build.
#   build  - all dependencies (TypeScript, tsx) and `npm run build` (tsc -> dist/)
#   deps   - production dependencies only (`npm ci --omit=dev`)
#   final  - node slim + production node_modules + dist/, running as a non-root user
#
# Build:  docker build -t falco-router:0.1.0 .
# Run:    docker run --rm -p 2801:2801 falco-router:0.1.0
#         docker run --rm -p 2801:2801 -v "$PWD/config.yaml:/etc/falco-router/config.yaml:ro" \
#           falco-router:0.1.0 -c /etc/falco-router/config.yaml
#         docker run --rm -e WEBHOOK_ADDRESS=https://example.com/falco falco-router:0.1.0 check-config
# Configuration comes from a YAML file given with `-c /etc/falco-router/config.yaml` and/or from
# environment variables named after the key path (QUEUE_DRIVER, QUEUE_REDIS_URL, WEBHOOK_ADDRESS, ...).

# Node 24, an LTS line in support (Node 20's ended in April 2026), so the AWS SDK's warning about
# an unsupported Node stays on. The code also runs on Node 20 (engines >= 20.18).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY outputs ./outputs
RUN npm run build

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim AS final
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at run time: "type": "module" and the version printed by --version.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# /var/lib/falco-router is the working directory: the default output (no output configured)
# writes ./falco-events.ndjson there. Mount a volume on it to keep that file.
# /etc/falco-router is where a config file is expected to be mounted.
RUN mkdir -p /var/lib/falco-router /etc/falco-router \
 && chown 1000:1000 /var/lib/falco-router
# The image's "node" user, by number so Kubernetes can check runAsNonRoot.
USER 1000:1000
WORKDIR /var/lib/falco-router
EXPOSE 2801
# There is no curl in the slim image: node itself probes the falcosidekick-compatible /healthz.
# It follows LISTENPORT when the port is set by environment variable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.LISTENPORT || 2801) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The router handles SIGTERM itself (drains in-flight deliveries for shutdown.graceperiod).
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD []
