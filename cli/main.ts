#!/usr/bin/env node
/**
 * `dicomweb-render-server <command>` (package.json "bin"): `import` uploads folders and zip files through
 * STOW-RS (cli/import.ts); `serve` starts the server with the flags that follow (as `npm start -- ...`).
 */
import { importMain } from './import';

const USAGE = `usage: dicomweb-render-server <command> [options]
  import <folder|file.zip>... --url URL   upload DICOM files through STOW-RS (see: import --help)
  serve [--port N --data DIR ...]          start the server (the README's configuration flags)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'import') return importMain(rest);
  if (command === 'serve') {
    process.argv = [process.argv[0], process.argv[1], ...rest];
    require('../server/main');
    return -1; // the server keeps the process
  }
  process.stderr.write(`${USAGE}\n`);
  return command === '--help' || command === '-h' ? 0 : 2;
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (e) => { process.stderr.write(`${e?.stack ?? e}\n`); process.exitCode = 1; });
