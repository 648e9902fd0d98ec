/**
 * Where the prebuilt OHIF viewer (the `dist/` folder of the npm package @ohif/app) comes from, for `--viewer`
 * (server/viewer.ts) and the OHIF e2e test.
 *
 * `npm install -D @ohif/app` cannot work against the registry this project uses: the package declares exact
 * versions of its sibling packages (@ohif/core, @ohif/i18n, @ohif/ui ...) that the registry does not carry, so
 * dependency resolution fails (ETARGET). The viewer does not need them anyway: `dist/` is a self-contained
 * webpack build. So the tarball is fetched with the ordinary client (`npm pack`), pinned to one version and to
 * the registry's sha512 integrity of that tarball (checked before anything is unpacked), and unpacked once
 * under node_modules/.cache (git-ignored, reused by later runs).
 *
 * Order: an explicit folder (OHIF_DIST, holding index.html), node_modules/@ohif/app/dist if it was installed,
 * the cache, else fetch.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';

export const OHIF_VERSION = '3.13.2';
/** `npm view @ohif/app@3.13.2 dist.integrity` */
export const OHIF_INTEGRITY = 'sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==';

/** The repository root (this file runs from dist/server or, under ts-node, server/). */
export const PACKAGE_ROOT = [path.resolve(__dirname, '../..'), path.resolve(__dirname, '..')]
  .find((d) => fs.existsSync(path.join(d, 'package.json'))) ?? process.cwd();

const hasViewer = (dir: string) => fs.existsSync(path.join(dir, 'index.html')) && fs.existsSync(path.join(dir, 'app-config.js'));

/** The sha512 integrity string (SRI form, as npm records it) of a file. */
export function integrityOf(file: string): string {
  return `sha512-${crypto.createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

export function ohifDist(explicit: string | undefined = process.env.OHIF_DIST, root = PACKAGE_ROOT, say: (m: string) => void = () => undefined): string {
  if (explicit) {
    if (!hasViewer(explicit)) throw new Error(`OHIF_DIST=${explicit} holds no index.html and app-config.js`);
    return explicit;
  }
  const installed = path.join(root, 'node_modules/@ohif/app/dist');
  if (hasViewer(installed)) return installed;
  const cacheDir = path.join(root, 'node_modules/.cache/ohif-app', OHIF_VERSION);
  const dist = path.join(cacheDir, 'package/dist');
  if (hasViewer(dist)) return dist;

  say(`viewer: fetching @ohif/app@${OHIF_VERSION} once with npm pack into ${cacheDir} (about 60 MB)…`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-pack-'));
  try {
    let tarball: string;
    try {
      const out = execFileSync('npm', ['pack', `@ohif/app@${OHIF_VERSION}`, '--pack-destination', tmp, '--silent'],
        { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop()!;
      tarball = path.join(tmp, out.trim());
    } catch (e: any) {
      throw new Error(`could not fetch @ohif/app@${OHIF_VERSION} with npm pack (offline? set OHIF_DIST to an unpacked dist/ folder): ${String(e?.stderr || e?.message || e).trim().slice(0, 500)}`);
    }
    const got = integrityOf(tarball);
    if (got !== OHIF_INTEGRITY) throw new Error(`@ohif/app@${OHIF_VERSION} tarball integrity mismatch: expected ${OHIF_INTEGRITY}, got ${got}`);
    const staging = `${cacheDir}.partial-${process.pid}`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    execFileSync('tar', ['xzf', tarball, '-C', staging], { timeout: 300_000 });
    fs.rmSync(cacheDir, { recursive: true, force: true });
    fs.renameSync(staging, cacheDir); // a half-unpacked tree is never taken for the viewer
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!hasViewer(dist)) throw new Error(`@ohif/app@${OHIF_VERSION} has no dist/index.html and dist/app-config.js`);
  return dist;
}
