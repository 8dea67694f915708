# imgmesh node image. The server's TypeScript runs through Node's type stripping; only the web
# app is built (tsc, a dev dependency), in a first stage, so no dev dependency is in the image.
FROM node:24-slim AS web
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY web ./web
# The app imports the API's types from models/ (type-only: nothing of it is shipped).
COPY models ./models
RUN node web/build.ts

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    DATA_DIR=/data \
    PORT=3000 \
    # Same runtime tuning as `npm start` (see docs/benchmarks.md): freed large buffers go back to the OS.
    MALLOC_MMAP_THRESHOLD_=131072
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` builds the web app, which needs the dev dependencies (done above);
# no production dependency needs an install script (onnxruntime-node's would be skipped anyway).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY . .
COPY --from=web /app/dist/web ./dist/web
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 3000
# node as PID 1 (not npm) so SIGTERM reaches the broker and shutdown is graceful.
CMD ["node", "--max-semi-space-size=1", "main.ts"]
