/**
 * Measurements a test reports (match tables, counts, seeds) go to test-output/<name>.txt, not to the console:
 * a passing run prints nothing but the runner's own lines.
 */
import * as fs from 'fs';
import * as path from 'path';

export function report(name: string, text: string): void {
  const dir = path.join(process.cwd(), 'test-output');
  fs.mkdirSync(dir, { recursive: true });
  fs.appendFileSync(path.join(dir, `${name}.txt`), `${new Date().toISOString()} ${text}\n`);
}
