# The server image: builds the TypeScript once, runs on the embedded default (SQLite + a folder at /data).
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY server server
COPY storage storage
COPY render render
COPY dicom dicom
COPY bench bench
COPY conformance conformance
COPY test test
COPY scripts scripts
RUN REQUIRE_NATIVE=1 node scripts/build-native.js && npx tsc -p . && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# the rendering library's C addon (lookup and PNG encoder; render/native.ts)
COPY --from=build /app/render/native/build/Release/fastpng.node render/native/build/Release/fastpng.node
COPY package.json ./
ENV PORT=8042 DATA_DIR=/data HOST=0.0.0.0
# glibc malloc: one arena, and buffers of 512 KB and more returned to the system when freed; a small young
# generation for the main thread (README, Memory)
ENV MALLOC_ARENA_MAX=1 MALLOC_MMAP_THRESHOLD_=524288 MALLOC_TRIM_THRESHOLD_=1048576
VOLUME /data
EXPOSE 8042
CMD ["node", "--max-semi-space-size=2", "dist/server/main.js"]
