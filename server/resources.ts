/**
 * The resources this server offers under /dicom-web, in one table, and what follows from it:
 * - a method a resource does not offer gets 405 with a true `Allow` (RFC 9110 15.5.6);
 * - OPTIONS on the root answers the PS3.18 capabilities description (8.9, Annex H): a WADL document
 *   (application/vnd.sun.wadl+xml) of every resource, method, parameter and media type served; OPTIONS on any
 *   other resource answers its own part of it, with `Allow`;
 * - GET on the root answers a short page for a person (HTML, or JSON when that is what Accept asks).
 * Keep this table true when a route is added: test/capabilities.test.ts checks every entry against the server.
 */
import express, { NextFunction, Request, Response } from 'express';
import { parseAccept, mediaMatches } from './accept';
import { baseUrl } from './http';
import { ServerContext } from './context';

interface Method {
  name: 'GET' | 'POST' | 'DELETE';
  /** PS3.18 transaction name (WADL method id) */
  id: string;
  request?: string[];
  response: string[];
  query?: string[];
}

export interface ResourceDef {
  /** WADL path relative to the root, with {template} parameters */
  path: string;
  service: string;
  methods: Method[];
}

const QIDO_PARAMS = ['{attributeID}', 'includefield', 'fuzzymatching', 'limit', 'offset'];
const RENDER_PARAMS = ['accept', 'window', 'viewport', 'quality', 'annotation', 'iccprofile', 'overlays', 'overlaycolor'];
const JSON_TYPES = ['application/dicom+json', 'application/json'];
const DICOM = ['multipart/related; type="application/dicom"'];
const RENDERED = ['image/jpeg', 'image/png', 'multipart/related; type="image/jpeg"', 'multipart/related; type="image/png"'];
const FRAMES = ['multipart/related; type="application/octet-stream"', 'multipart/related; type="image/jpeg"', 'multipart/related; type="image/jls"',
  'multipart/related; type="image/jp2"', 'multipart/related; type="image/jphc"', 'multipart/related; type="image/dicom-rle"',
  'application/octet-stream', 'image/jpeg', 'image/jls', 'image/jp2', 'image/jphc', 'image/dicom-rle'];
const BULK = ['multipart/related; type="application/octet-stream"', 'application/octet-stream', ...FRAMES.filter((f) => f.includes('image/'))];
const STOW: Method = { name: 'POST', id: 'StoreInstances', request: DICOM, response: JSON_TYPES };
const del = (id: string): Method => ({ name: 'DELETE', id, response: [] });
const get = (id: string, response: string[], query?: string[]): Method => ({ name: 'GET', id, response, query });

export const RESOURCES: ResourceDef[] = [
  { path: 'studies', service: 'Studies (STOW-RS, QIDO-RS)', methods: [get('SearchForStudies', JSON_TYPES, QIDO_PARAMS), STOW] },
  { path: 'series', service: 'QIDO-RS', methods: [get('SearchForSeries', JSON_TYPES, QIDO_PARAMS)] },
  { path: 'instances', service: 'QIDO-RS', methods: [get('SearchForInstances', JSON_TYPES, QIDO_PARAMS)] },
  { path: 'studies/{study}', service: 'Studies', methods: [get('RetrieveStudy', DICOM), { ...STOW, id: 'StoreStudyInstances' }, del('DeleteStudy')] },
  { path: 'studies/{study}/metadata', service: 'WADO-RS', methods: [get('RetrieveStudyMetadata', JSON_TYPES)] },
  { path: 'studies/{study}/rendered', service: 'WADO-RS', methods: [get('RetrieveRenderedStudy', RENDERED, RENDER_PARAMS)] },
  { path: 'studies/{study}/thumbnail', service: 'WADO-RS', methods: [get('RetrieveStudyThumbnail', ['image/jpeg', 'image/png'], ['viewport'])] },
  { path: 'studies/{study}/series', service: 'QIDO-RS', methods: [get('SearchForStudySeries', JSON_TYPES, QIDO_PARAMS)] },
  { path: 'studies/{study}/instances', service: 'QIDO-RS', methods: [get('SearchForStudyInstances', JSON_TYPES, QIDO_PARAMS)] },
  { path: 'studies/{study}/series/{series}', service: 'Studies', methods: [get('RetrieveSeries', DICOM), del('DeleteSeries')] },
  { path: 'studies/{study}/series/{series}/metadata', service: 'WADO-RS', methods: [get('RetrieveSeriesMetadata', JSON_TYPES)] },
  { path: 'studies/{study}/series/{series}/rendered', service: 'WADO-RS', methods: [get('RetrieveRenderedSeries', RENDERED, RENDER_PARAMS)] },
  { path: 'studies/{study}/series/{series}/thumbnail', service: 'WADO-RS', methods: [get('RetrieveSeriesThumbnail', ['image/jpeg', 'image/png'], ['viewport'])] },
  { path: 'studies/{study}/series/{series}/instances', service: 'QIDO-RS', methods: [get('SearchForSeriesInstances', JSON_TYPES, QIDO_PARAMS)] },
  { path: 'studies/{study}/series/{series}/instances/{instance}', service: 'Studies', methods: [get('RetrieveInstance', [...DICOM, 'application/dicom']), del('DeleteInstance')] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/metadata', service: 'WADO-RS', methods: [get('RetrieveInstanceMetadata', JSON_TYPES)] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/rendered', service: 'WADO-RS', methods: [get('RetrieveRenderedInstance', RENDERED, RENDER_PARAMS)] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/thumbnail', service: 'WADO-RS', methods: [get('RetrieveInstanceThumbnail', ['image/jpeg', 'image/png'], ['viewport'])] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}', service: 'WADO-RS', methods: [get('RetrieveFrames', FRAMES)] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered', service: 'WADO-RS', methods: [get('RetrieveRenderedFrames', RENDERED, RENDER_PARAMS)] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail', service: 'WADO-RS', methods: [get('RetrieveFramesThumbnail', ['image/jpeg', 'image/png'], ['viewport'])] },
  { path: 'studies/{study}/series/{series}/instances/{instance}/bulkdata/{tagPath}', service: 'WADO-RS', methods: [get('RetrieveBulkdata', BULK)] },
  { path: 'signed-links', service: 'this server: signed rendered links', methods: [{ name: 'POST', id: 'MintSignedLink', request: ['application/json'], response: ['application/json'] }] },
];

/** Path regular expression of a resource ({x} = one segment; {tagPath} = the rest). */
const matchers = RESOURCES.map((r) => ({
  r,
  re: new RegExp(`^/${r.path.replace(/\{tagPath\}/, '.+').replace(/\{[a-z]+\}/gi, '[^/]+')}/?$`),
}));

export function resourceOf(path: string): ResourceDef | undefined {
  return matchers.find((m) => m.re.test(path))?.r;
}

export function allowOf(r: ResourceDef): string {
  const names = r.methods.map((m) => m.name);
  if (names.includes('GET')) names.splice(names.indexOf('GET') + 1, 0, 'HEAD' as any);
  return [...names, 'OPTIONS'].join(', ');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** PS3.18 Annex H: WADL (http://wadl.dev.java.net/2009/02) of the given resources, relative to `base`. */
export function wadl(base: string, resources: ResourceDef[]): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>',
    '<application xmlns="http://wadl.dev.java.net/2009/02" xmlns:xsd="http://www.w3.org/2001/XMLSchema">',
    '  <doc title="dicomweb-render-server DICOMweb capabilities (PS3.18 Annex H); see conformance/CONFORMANCE.md"/>',
    `  <resources base="${esc(base)}/">`];
  for (const r of resources) {
    lines.push(`    <resource path="${esc(r.path)}">`);
    lines.push(`      <doc title="${esc(r.service)}"/>`);
    for (const t of r.path.match(/\{[a-zA-Z]+\}/g) ?? []) lines.push(`      <param name="${t.slice(1, -1)}" style="template" type="xsd:string" required="true"/>`);
    for (const m of r.methods) {
      lines.push(`      <method name="${m.name}" id="${m.id}">`);
      if (m.request || m.query) {
        lines.push('        <request>');
        for (const q of m.query ?? []) lines.push(`          <param name="${esc(q)}" style="query" type="xsd:string" required="false"/>`);
        for (const t of m.request ?? []) lines.push(`          <representation mediaType="${esc(t)}"/>`);
        lines.push('        </request>');
      }
      lines.push(`        <response status="${m.name === 'DELETE' ? 204 : 200}">`);
      for (const t of m.response) lines.push(`          <representation mediaType="${esc(t)}"/>`);
      lines.push('        </response>');
      lines.push('      </method>');
    }
    lines.push('    </resource>');
  }
  lines.push('  </resources>', '</application>', '');
  return lines.join('\n');
}

const WADL_TYPE = 'application/vnd.sun.wadl+xml';

function rootPage(base: string): { html: string; json: unknown } {
  const services = [
    { name: 'QIDO-RS (search)', example: `${base}/studies?PatientName=*&limit=10` },
    { name: 'WADO-RS (retrieve, metadata, frames, bulk data, rendered, thumbnail)', example: `${base}/studies/{StudyInstanceUID}/metadata` },
    { name: 'STOW-RS (store)', example: `POST ${base}/studies (multipart/related; type="application/dicom")` },
    { name: 'Delete (non-standard)', example: `DELETE ${base}/studies/{StudyInstanceUID}` },
    { name: 'Capabilities (PS3.18 Annex H, WADL)', example: `OPTIONS ${base}` },
  ];
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DICOMweb server</title></head>
<body>
<h1>DICOMweb server</h1>
<p>DICOM PS3.18 services at <code>${esc(base)}</code>. Point a DICOMweb client or viewer (OHIF, dicomweb-client) at this URL.</p>
<ul>
${services.map((s) => `<li>${esc(s.name)}: <code>${esc(s.example)}</code></li>`).join('\n')}
</ul>
<p>The capabilities description lists every resource, method and media type: <code>curl -X OPTIONS ${esc(base)}</code>.
Health: <code>/health</code>.</p>
</body></html>
`;
  return { html, json: { name: 'dicomweb-render-server', dicomWeb: base, services, capabilities: `OPTIONS ${base}` } };
}

/**
 * The root (GET page, OPTIONS capabilities, 405 otherwise) and OPTIONS on every resource: mounted before
 * authentication, since they reveal nothing stored (authentication lets OPTIONS through anyway).
 */
export function rootAndOptionsRouter(ctx: ServerContext): express.Router {
  const r = express.Router();
  r.use((req: Request, res: Response, next: NextFunction) => {
    const isRoot = req.path === '/' || req.path === '';
    if (isRoot) {
      res.set('Allow', 'GET, HEAD, OPTIONS');
      if (req.method === 'OPTIONS') {
        res.status(200).set('Content-Type', WADL_TYPE).send(Buffer.from(wadl(baseUrl(req, ctx), RESOURCES)));
        return;
      }
      if (req.method === 'GET' || req.method === 'HEAD') {
        const page = rootPage(baseUrl(req, ctx));
        const accept = parseAccept(req.get('accept'));
        const wantsJson = accept.length > 0 && accept[0].type !== '*/*' && !mediaMatches(accept[0].type, 'text/html') && accept.some((a) => a.type === 'application/json');
        if (wantsJson) res.status(200).json(page.json);
        else res.status(200).type('text/html').send(page.html);
        return;
      }
      res.status(405).type('application/json').send(JSON.stringify({ error: `${req.method} is not offered on the DICOMweb root; allowed: GET, HEAD, OPTIONS` }));
      return;
    }
    if (req.method !== 'OPTIONS') { next(); return; }
    const def = resourceOf(req.path);
    if (!def) { next(); return; }
    res.status(200).set('Allow', allowOf(def)).set('Content-Type', WADL_TYPE).send(Buffer.from(wadl(baseUrl(req, ctx), [def])));
  });
  return r;
}

/**
 * 405 with a true Allow for a method a known resource does not offer. Mounted after authentication, so a
 * request without the right credentials is refused as such first (a signature is no credential for a POST).
 */
export function methodGuard(): express.Router {
  const r = express.Router();
  r.use((req: Request, res: Response, next: NextFunction) => {
    const def = resourceOf(req.path);
    if (!def) { next(); return; }
    const allow = allowOf(def);
    if (!allow.split(', ').includes(req.method)) {
      res.status(405).set('Allow', allow).type('application/json').send(JSON.stringify({ error: `${req.method} is not offered on this resource; allowed: ${allow}` }));
      return;
    }
    next();
  });
  return r;
}
