/**
 * Where the prebuilt OHIF viewer (the `dist/` folder of the npm package @ohif/app) comes from.
 *
 * `npm install -D @ohif/app` cannot work against the registry this project uses: the package declares exact
 * versions of its sibling packages (@ohif/core, @ohif/i18n, @ohif/ui ...) that the registry does not carry, so
 * dependency resolution fails (ETARGET). The viewer does not need them anyway: `dist/` is a self-contained
 * webpack build. So the tarball is fetched with the ordinary client (`npm pack`), pinned to one version, and
 * unpacked once under node_modules/.cache (git-ignored, reused by later runs).
 *
 * Order: $OHIF_DIST (a folder holding index.html), node_modules/@ohif/app/dist if it was installed, the cache.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';

export const OHIF_VERSION = '3.13.2';

const hasViewer = (dir: string) => fs.existsSync(path.join(dir, 'index.html')) && fs.existsSync(path.join(dir, 'app-config.js'));

export function ohifDist(root = process.cwd()): string {
  const fromEnv = process.env.OHIF_DIST;
  if (fromEnv) {
    if (!hasViewer(fromEnv)) throw new Error(`OHIF_DIST=${fromEnv} holds no index.html and app-config.js`);
    return fromEnv;
  }
  const installed = path.join(root, 'node_modules/@ohif/app/dist');
  if (hasViewer(installed)) return installed;
  const cacheDir = path.join(root, 'node_modules/.cache/ohif-app', OHIF_VERSION);
  const dist = path.join(cacheDir, 'package/dist');
  if (hasViewer(dist)) return dist;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-pack-'));
  try {
    const out = execFileSync('npm', ['pack', `@ohif/app@${OHIF_VERSION}`, '--pack-destination', tmp, '--silent'],
      { encoding: 'utf8', timeout: 180_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
    const tarball = path.join(tmp, out.trim());
    fs.mkdirSync(cacheDir, { recursive: true });
    execFileSync('tar', ['xzf', tarball, '-C', cacheDir], { timeout: 120_000 });
  } catch (e: any) {
    throw new Error(`could not fetch @ohif/app@${OHIF_VERSION} with npm pack: ${e?.stderr || e?.message || e}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!hasViewer(dist)) throw new Error(`@ohif/app@${OHIF_VERSION} has no dist/index.html and dist/app-config.js`);
  return dist;
}
