/**
 * No Docker engine runs on the test machines, so docker-compose.yml is checked against what the server reads:
 * the services and ports it names, the environment the server accepts, the volume at its data folder, and an
 * OHIF configuration pointing at the server's published port.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parse } from 'yaml';
import { loadConfig } from '../server/config';

const root = process.cwd();
const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));

test('the server service runs on the embedded default with a persistent volume', () => {
  const server = compose.services.server;
  expect(server.build).toBe('.');
  const env = server.environment as Record<string, string>;
  const config = loadConfig([], env); // throws on any value the server would refuse
  expect(server.ports).toContain(`${config.port}:${config.port}`);
  const [volume, mount] = String(server.volumes[0]).split(':');
  expect(mount).toBe(env.DATA_DIR);
  expect(Object.keys(compose.volumes)).toContain(volume);
  expect(config.corsOrigins).toContain('http://localhost:3000');
  expect(config.publicUrl).toBe(`http://localhost:${config.port}/dicom-web`);
});

test('the Dockerfile builds what the service runs', () => {
  const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const cmd = /CMD \["node", (?:"-[^"]*", )*"([^"]+)"\]/.exec(dockerfile)![1]; // node flags, then the script
  expect(cmd).toBe('dist/server/main.js');
  expect(fs.existsSync(path.join(root, 'server', 'main.ts'))).toBe(true);
  for (const m of dockerfile.matchAll(/^COPY (?!--from)(\S+)/gm)) expect(fs.existsSync(path.join(root, m[1]))).toBe(true);
});

test('the OHIF service mounts a config whose DICOMweb roots are the server published port', () => {
  const ohif = compose.services.ohif;
  expect(ohif.depends_on).toContain('server');
  expect(ohif.ports).toContain('3000:80');
  const [file, target] = String(ohif.volumes[0]).split(':');
  expect(target).toBe('/usr/share/nginx/html/app-config.js');
  const js = fs.readFileSync(path.join(root, file), 'utf8');
  const window: any = {};
  new Function('window', js)(window);
  const ds = window.config.dataSources[0];
  expect(ds.namespace).toBe('@ohif/extension-default.dataSourcesModule.dicomweb');
  const port = compose.services.server.environment.PORT;
  for (const k of ['qidoRoot', 'wadoRoot']) expect(ds.configuration[k]).toBe(`http://localhost:${port}/dicom-web`);
});
