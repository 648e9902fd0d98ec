/**
 * Memory settings: `npm start`, the Dockerfile and the bench start the server with the same malloc settings and
 * node flags (README, Memory); and a GarbageBudget frees garbage ArrayBuffers once its limit is passed.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MALLOC_ENV, SERVER_NODE_ARGS } from '../bench/lib/servers';
import { GarbageBudget } from '../server/gc';

/** The repository: the nearest folder above this compiled test holding package.json. */
const ROOT = (() => {
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) if (fs.existsSync(path.join(d, 'package.json'))) return d;
  throw new Error('no package.json above the tests');
})();

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

test('a GarbageBudget collects young garbage buffers once past its limit, not before', () => {
  const budget = new GarbageBudget(8 * 1024 * 1024, 'minor');
  const external = () => process.memoryUsage().arrayBuffers;
  const churn = (n: number) => { for (let i = 0; i < n; i++) { const b = Buffer.alloc(100_000); budget.add(b.length); } };
  churn(40); // 4 MB of dead buffers: under the limit, nothing collected
  const before = external();
  expect(before).toBeGreaterThan(3_000_000);
  churn(50); // passes 8 MB at the 84th: the dead ones are freed, 6 are left
  expect(external()).toBeLessThan(before - 3_000_000);
});
