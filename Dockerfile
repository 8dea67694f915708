# imgmesh node image. TypeScript runs through Node's type stripping, so there is no build step
# and no dev dependency in the image.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    DATA_DIR=/data \
    PORT=3000 \
    # Same runtime tuning as `npm start` (see README, Benchmarks): freed large buffers go back to the OS.
    MALLOC_MMAP_THRESHOLD_=131072
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY . .
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 3000
# node as PID 1 (not npm) so SIGTERM reaches the broker and shutdown is graceful.
CMD ["node", "--max-semi-space-size=1", "main.ts"]
