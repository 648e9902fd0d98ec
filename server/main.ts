/**
 * `npm start`: the server on its embedded default (SQLite index + a local folder).
 */
import { loadConfig, ConfigError } from './config';
import { createApp, listen } from './app';
import { ohifDist, PACKAGE_ROOT } from './ohif-dist';
import { log } from './log';

async function main() {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof ConfigError) { log.fatal(`configuration error: ${e.message}`); process.exit(2); }
    throw e;
  }
  if (config.viewer) {
    // the OHIF build is fetched once (npm pack, integrity-checked) into node_modules/.cache; say so first
    try {
      config.viewerDist = ohifDist(config.viewerDist, PACKAGE_ROOT, (m) => console.log(m));
    } catch (e: any) { console.error(`viewer: ${e?.message ?? e}`); process.exit(2); }
  }
  const app = await createApp(config);
  const server = await listen(app.app, config.port, config.host);
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  if (app.dimse) log.info({ dimsePort: app.dimse.port, aeTitle: config.dimse.aeTitle }, `DICOM C-STORE SCP listening on port ${app.dimse.port}, AE title ${config.dimse.aeTitle}`);
  const ready = `DICOMweb server ready on http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}/dicom-web (data in ${config.dataDir})`;
  // The ready line is what scripts and tests wait for: printed even when the log level hides info.
  if (log.isLevelEnabled('info')) log.info({ port, dataDir: config.dataDir }, ready); else console.log(ready);
  const frontPage = `front page: http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}/${config.viewer ? `  viewer: http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}/viewer/` : ''}`;
  log.info(frontPage);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => { app.close().then(() => process.exit(0), () => process.exit(1)); });
    server.closeIdleConnections?.();
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => { log.fatal(`failed to start: ${e?.message ?? e}`); process.exit(1); });
