#!/usr/bin/env bash
# The OHIF v3 browser test on a fresh Debian machine: Chromium from Debian (a Playwright browser download
# cannot work here), the project's npm dependencies, then `npm run test:e2e` (builds, then runs
# e2e/ohif.e2e.ts and e2e/front-page.e2e.ts). The prebuilt viewer is fetched by the test itself (npm pack @ohif/app, see e2e/ohif-dist.ts).
# Screenshots and the DICOMweb request log land in test-output/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium ca-certificates
fi
[ -d node_modules ] || npm ci

# The test kills itself after 6 minutes; this is the outer bound should anything outlive it.
timeout --kill-after=30 10m npm run test:e2e
