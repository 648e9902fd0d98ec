/**
 * Memory settings: `npm start`, the Dockerfile and the bench start the server with the same malloc settings and
 * node flags (README, Memory); and a GarbageBudget frees garbage ArrayBuffers once its limit is passed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import { MALLOC_ENV, SERVER_NODE_ARGS, repoRoot } from '../bench/lib/servers';
import { GarbageBudget } from '../server/gc';

const ROOT = repoRoot(__dirname);

test('npm start, the Dockerfile and the bench agree on malloc settings and node flags', () => {
  const start: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.start;
  const docker = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  for (const [k, v] of Object.entries(MALLOC_ENV)) {
    expect(start).toContain(`${k}=${v}`);
    expect(docker).toMatch(new RegExp(`^ENV .*\\b${k}=${v}\\b`, 'm'));
  }
  expect(start).toContain(`node ${SERVER_NODE_ARGS.join(' ')} dist/server/main.js`);
  expect(docker).toContain(`CMD ["node", ${SERVER_NODE_ARGS.map((a) => JSON.stringify(a)).join(', ')}, "dist/server/main.js"]`);
});

test('a GarbageBudget collects once each time its limit is passed, with its kind of collection', () => {
  const calls: string[] = [];
  const budget = new GarbageBudget(1000, 'major', 'async', (type, execution) => { calls.push(`${type}/${execution}`); });
  budget.add(600);
  expect(calls).toEqual([]);
  budget.add(600); // 1200: past the limit
  expect(calls).toEqual(['major/async']);
  budget.add(900); // the count started again at 0
  expect(calls).toEqual(['major/async']);
  budget.add(100);
  expect(calls).toEqual(['major/async', 'major/async']);
});

test('a minor collection frees dead young buffers (in a fresh process, where no other test holds memory)', () => {
  const gcModule = require.resolve('../server/gc');
  const script = `
    const { GarbageBudget } = require(${JSON.stringify(gcModule)});
    const budget = new GarbageBudget(8 * 1024 * 1024, 'minor');
    const churn = (n) => { for (let i = 0; i < n; i++) { const b = Buffer.alloc(100000); budget.add(b.length); } };
    churn(40); const before = process.memoryUsage().arrayBuffers;
    churn(50); // the buffers are freed by V8's background sweeper, after the collection returns
    setTimeout(() => process.stdout.write(JSON.stringify({ before, after: process.memoryUsage().arrayBuffers })), 200);`;
  const { before, after } = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
  expect(before).toBeGreaterThan(3_900_000); // 40 dead buffers, not collected under the limit
  expect(after).toBeLessThan(before - 3_000_000); // passing 8 MB at the 84th freed them; 6 are left
});
