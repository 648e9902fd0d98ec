#!/usr/bin/env node
/*
 * Builds the rendering library's C addon (render/native/fastpng.c: grey lookup and PNG encoder) with node-gyp,
 * when it is missing or older than its source. It is optional: if the build fails (no C compiler, no Node
 * headers), the server renders with the JavaScript path and zlib, which gives the same images, slower
 * (README, Performance). REQUIRE_NATIVE=1 makes a failed build an error (CI sets it).
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const dir = path.join(__dirname, '..', 'render', 'native');
const out = path.join(dir, 'build', 'Release', 'fastpng.node');
const sources = ['fastpng.c', 'binding.gyp'].map((f) => path.join(dir, f));
const mtime = (f) => { try { return fs.statSync(f).mtimeMs; } catch { return -1; } };

if (mtime(out) > Math.max(...sources.map(mtime))) process.exit(0);

// npm puts its own node-gyp on PATH for scripts (and names it in npm_config_node_gyp); outside npm, try PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const r = spawnSync(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status === 0 && fs.existsSync(out)) {
  console.log('render/native: built fastpng.node');
  process.exit(0);
}
const why = r.error ? r.error.message : (r.stderr || r.stdout || '').trim().split('\n').slice(-6).join('\n');
console.warn(`render/native: could not build the C addon; rendering falls back to JavaScript and zlib.\n${why}`);
process.exit(process.env.REQUIRE_NATIVE === '1' ? 1 : 0);
