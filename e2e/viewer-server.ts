/**
 * A static HTTP server for the prebuilt OHIF viewer: its own files, an app-config.js generated for our
 * DICOMweb server instead of the package's, and the single-page-app fallback (any other path is index.html,
 * as the package's serve.json and _redirects ask).
 */
import express from 'express';
import * as http from 'http';
import { appConfig } from '../server/viewer';

export interface ViewerServer { url: string; server: http.Server; setDicomWebRoot(root: string): void; stop(): Promise<void> }

export async function startViewer(distDir: string): Promise<ViewerServer> {
  let root = '';
  const app = express();
  app.disable('x-powered-by');
  app.get('/app-config.js', (_req, res) => { res.type('application/javascript').set('Cache-Control', 'no-store').send(appConfig(root)); });
  app.use(express.static(distDir, { index: 'index.html', fallthrough: true }));
  app.use((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.status(405).end(); return; }
    // root: the dist folder may sit under a dot-folder (node_modules/.cache), which send refuses in a full path
    res.sendFile('index.html', { root: distDir });
  });
  const server = await new Promise<http.Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1');
    s.once('listening', () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as any).port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    setDicomWebRoot(r: string) { root = r; },
    async stop() { await new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections?.(); }); },
  };
}
