/**
 * Accept header parsing (RFC 7231 5.3.2) with the DICOMweb parameters `type` and `transfer-syntax`
 * (PS3.18 8.7.3), and the `accept` query parameter that overrides it (PS3.18 8.3.3.1).
 */
import { Request } from 'express';
import { parseMediaType, MediaType } from './multipart';
import { badRequest } from './errors';

export interface AcceptEntry extends MediaType { q: number }

export function parseAccept(value: string | undefined): AcceptEntry[] {
  if (!value || !value.trim()) return [{ type: '*/*', params: {}, q: 1 }];
  const entries: AcceptEntry[] = [];
  // Split on commas outside quotes.
  const items = value.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  for (const item of items) {
    const m = parseMediaType(item.trim());
    if (!m || !/^[a-z0-9*!#$&^_.+-]+\/[a-z0-9*!#$&^_.+-]+$/i.test(m.type)) throw badRequest(`malformed Accept value "${item.trim().slice(0, 80)}"`);
    const q = m.params.q !== undefined ? Number(m.params.q) : 1;
    if (!Number.isFinite(q) || q < 0 || q > 1) throw badRequest('malformed q value in Accept');
    delete m.params.q;
    if (m.params.type) m.params.type = m.params.type.toLowerCase();
    entries.push({ ...m, q });
  }
  // Stable sort by q, highest first (order of appearance breaks ties).
  return entries.map((e, i) => ({ e, i })).sort((a, b) => b.e.q - a.e.q || a.i - b.i).map((x) => x.e).filter((e) => e.q > 0);
}

/** The request's Accept, with the `accept` query parameter taking precedence (PS3.18 8.3.3.1). */
export function requestAccept(req: Request): AcceptEntry[] {
  const q = req.query.accept;
  if (q !== undefined) {
    const values = (Array.isArray(q) ? q : [q]).map(String);
    return parseAccept(values.join(','));
  }
  return parseAccept(req.get('accept'));
}

/** Names clients still send for the same bitstreams (dicomweb-client, older PS3.18 editions). */
const ALIASES: Record<string, string> = {
  'image/x-jls': 'image/jls',
  'image/x-dicom-rle': 'image/dicom-rle',
  'image/jhc': 'image/jphc',
  'image/x-jp2': 'image/jp2',
};

export function mediaMatches(range: string, type: string): boolean {
  range = ALIASES[range] ?? range;
  type = ALIASES[type] ?? type;
  if (range === '*/*') return true;
  const [rt, rs] = range.split('/');
  const [t, s] = type.split('/');
  return rt === t && (rs === '*' || rs === s);
}
