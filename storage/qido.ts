/**
 * QIDO-RS search (PS3.18 10.6) over the SQLite index, with the attribute matching of PS3.4 C.2.2.2.
 * No HTTP here: `parseQidoQuery` turns the URL query into a validated `QidoQuery` (or a `QidoQueryError` with a
 * short reason), and `searchStudies` / `searchSeries` / `searchInstances` answer it with DICOM JSON datasets.
 *
 * Where a key is matched:
 * - attributes with a column of their own (Table QIDO_COLUMNS) are matched in SQL on that column, so the indexes
 *   of index-sqlite.ts apply (Patient Name through its `_fuzzy` column, see `pnCondition`);
 * - other attributes through json_each on the `attrs` DICOM JSON of the level they belong to (storage/levels.ts);
 *   a key of a lower level (e.g. Modality in a study search) matches if some series / instance matches (EXISTS).
 */
import type Database from 'better-sqlite3';
import { JsonAttribute, JsonDataset } from '../dicom/json';
import { lookupKeyword, lookupTag } from '../dicom/dictionary';
import { INSTANCE_LEVEL, SERIES_LEVEL, STUDY_LEVEL } from './levels';
import { fuzzyName } from './index-sqlite';

export type QidoLevel = 'study' | 'series' | 'instance';

/** A query that `parseQidoQuery` refused; `reason` is short enough for a 400 response. */
export class QidoQueryError extends Error {
  constructor(readonly reason: string) { super(reason); this.name = 'QidoQueryError'; }
}
/**
 * A query key or includefield this server does not support (unknown name, private or unlisted tag, sequence
 * path or sequence/binary matching). PS3.18 8.3: unsupported parameters are ignored; the Warning header names them.
 */
export class UnsupportedQueryKey extends QidoQueryError {}

/** How one key is matched (PS3.4 C.2.2.2.1 to C.2.2.2.5). */
export type Matcher =
  /** C.2.2.2.3: zero-length value; the attribute is returned, nothing is filtered */
  | { kind: 'universal' }
  /** C.2.2.2.1 (numbers for numeric VRs, strings otherwise) */
  | { kind: 'single'; value: string | number }
  /** C.2.2.2.4: `*` any run of characters, `?` one character */
  | { kind: 'wildcard'; pattern: string }
  /** C.2.2.2.5: DA / TM / DT, inclusive bounds already widened to the precision given (see `dateBounds`) */
  | { kind: 'range'; from?: string; to?: string }
  /** C.2.2.2.2 List of UID Matching (also accepted for CS, e.g. ModalitiesInStudy=CT\MR: any value matches) */
  | { kind: 'list'; values: string[] };

export interface MatchKey { tag: string; keyword: string; vr: string; matcher: Matcher }

export interface QidoQuery {
  level: QidoLevel;
  /** One entry per attribute; all must match (PS3.4 C.2.2.2: keys are ANDed). */
  match: MatchKey[];
  /** PS3.18 8.3.4.3: tags to return beyond the level's defaults, or every stored attribute */
  includefield: string[] | 'all';
  /** PS3.18 8.3.4.4; undefined: no limit asked for */
  limit?: number;
  offset: number;
  /** PS3.18 8.3.4.2: fuzzy semantic matching of person names */
  fuzzymatching: boolean;
  /** What was accepted but not acted on, one sentence each, for the Warning header (PS3.18 8.4) */
  ignored: string[];
}

// ---------------------------------------------------------------------------------------------
// Parsing (PS3.18 8.3.4)

/** Query parameters that are not match keys. `accept` is PS3.18 8.3.3.1 content negotiation (read by the router). */
const PARAMETERS = new Set(['includefield', 'fuzzymatching', 'limit', 'offset', 'emptyvaluematching', 'multiplevaluematching', 'accept']);
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const NUMERIC_VRS = new Set(['IS', 'DS', 'US', 'UL', 'SS', 'SL', 'FL', 'FD', 'SV', 'UV']);
/** PS3.4 C.2.2.2.4: the VRs on which Wild Card Matching is defined. */
const WILDCARD_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
/** PS3.5 9.1 UID syntax (the same rule as server/errors.ts checkUID; storage does not import from server/). */
const UID_RE = /^[0-9]+(\.[0-9]+)*$/;
const MAX_UINT = 2 ** 31 - 1;
/** Longest matching value accepted, and most matching keys in one query (each one is a condition on every row). */
export const MAX_MATCH_LENGTH = 1024;
export const MAX_MATCH_KEYS = 64;
/** Most values in one UID or CS list (each is a bound parameter of the SELECT). */
export const MAX_LIST_VALUES = 1000;

interface Attribute { tag: string; keyword: string; vr: string }

/** A keyword of PS3.6 Table 6-1 or 8 hex digits (PS3.18 8.3.4.1 `attribute`); dotted sequence paths are refused. */
function resolveAttribute(id: string): Attribute {
  if (id.includes('.')) throw new UnsupportedQueryKey(`sequence attribute paths are not supported: "${clip(id)}"`);
  let entry;
  if (/^[0-9A-Fa-f]{8}$/.test(id)) {
    const tag = id.toUpperCase();
    entry = lookupTag(tag);
    if (!entry) throw new UnsupportedQueryKey(`unknown attribute tag ${tag}`);
    entry = { ...entry, tag };
  } else {
    entry = lookupKeyword(id);
    if (!entry) throw new UnsupportedQueryKey(`unknown attribute keyword or parameter "${clip(id)}"`);
  }
  if (entry.tag.startsWith('0002') || entry.tag.endsWith('0000') || entry.tag.startsWith('FFFE')) {
    throw new UnsupportedQueryKey(`${entry.keyword} is not a dataset attribute`);
  }
  const vr = /^[A-Z]{2}$/.test(entry.vr) ? entry.vr : 'UN'; // "xs", "ox", "US or SS": binary or ambiguous
  return { tag: entry.tag, keyword: entry.keyword, vr };
}

const clip = (s: string) => (s.length > 64 ? `${s.slice(0, 64)}...` : s);

function strings(name: string, v: unknown): string[] {
  const values = Array.isArray(v) ? v : [v];
  for (const x of values) if (typeof x !== 'string') throw new QidoQueryError(`malformed query parameter "${clip(name)}"`);
  return values as string[];
}

function one(name: string, v: unknown): string {
  const values = strings(name, v);
  if (values.length !== 1) throw new QidoQueryError(`${name} given more than once`);
  return values[0];
}

function bool(name: string, v: unknown): boolean {
  const s = one(name, v);
  if (s !== 'true' && s !== 'false') throw new QidoQueryError(`${name} must be true or false`);
  return s === 'true';
}

function uint(name: string, v: unknown): number {
  const s = one(name, v);
  if (!/^[0-9]{1,10}$/.test(s) || Number(s) > MAX_UINT) throw new QidoQueryError(`${name} must be a non-negative integer`);
  return Number(s);
}

/**
 * Parses the query of a QIDO-RS request (PS3.18 8.3.4, Table 8.3.4-1). `rawQuery` is what the URL parser gave:
 * repeated parameters are arrays. Throws QidoQueryError on anything it cannot honour exactly, except the
 * parameters it accepts and ignores, which are listed in `ignored` for the Warning header.
 */
export function parseQidoQuery(level: QidoLevel, rawQuery: Record<string, unknown>): QidoQuery {
  const q: QidoQuery = { level, match: [], includefield: [], offset: 0, fuzzymatching: false, ignored: [] };
  const include = new Set<string>();
  let all = false;
  const keys = new Map<string, MatchKey>();
  for (const [name, raw] of Object.entries(rawQuery)) {
    if (raw === undefined) continue;
    switch (name) {
      case 'accept': strings(name, raw); break;
      case 'includefield':
        // PS3.18 8.3.4.3: a comma-separated list, the parameter repeated, or "all"
        for (const item of strings(name, raw).flatMap((s) => s.split(','))) {
          const id = item.trim();
          if (!id) throw new QidoQueryError('includefield has an empty attribute');
          if (id === 'all') all = true;
          else {
            try { include.add(resolveAttribute(id).tag); } catch (e) {
              if (!(e instanceof UnsupportedQueryKey)) throw e;
              q.ignored.push(`includefield ${clip(id)} is not supported and was ignored (${e.reason}).`);
            }
          }
        }
        break;
      case 'fuzzymatching': q.fuzzymatching = bool(name, raw); break;
      case 'limit': q.limit = uint(name, raw); break;
      case 'offset': q.offset = uint(name, raw); break;
      case 'emptyvaluematching':
      case 'multiplevaluematching':
        // PS3.18 8.3.4.5 / 8.3.4.6: not implemented; "false" is what we do anyway
        if (bool(name, raw)) q.ignored.push(`The ${name} parameter is not supported.`);
        break;
      default: {
        if (PARAMETERS.has(name)) break;
        let attr: Attribute;
        try { attr = resolveAttribute(name); } catch (e) {
          if (!(e instanceof UnsupportedQueryKey)) throw e;
          strings(name, raw); // a malformed value (not a string) stays 400
          q.ignored.push(`The ${clip(name)} query parameter is not supported and was ignored (${e.reason}).`);
          break;
        }
        if (keys.has(attr.tag)) throw new QidoQueryError(`${attr.keyword} given more than once`);
        let key: MatchKey | null;
        try { key = matchKey(attr, strings(name, raw)); } catch (e) {
          if (!(e instanceof UnsupportedQueryKey)) throw e;
          q.ignored.push(`The ${attr.keyword} query key is not supported for matching and was ignored (${e.reason}).`);
          break;
        }
        if (key) keys.set(attr.tag, key);
        else q.ignored.push(`The ${name} query key is not supported.`);
      }
    }
  }
  if (keys.size > MAX_MATCH_KEYS) throw new QidoQueryError(`more than ${MAX_MATCH_KEYS} matching keys`);
  q.match = [...keys.values()];
  q.includefield = all ? 'all' : [...include];
  return q;
}

/** Attributes the server computes for responses but cannot match on (ignored with a Warning). */
const RETURN_ONLY = new Set(['00081190' /* RetrieveURL */, '00080054' /* RetrieveAETitle */, '00081199', '00081198']);

/** The matcher for one key and its values (a repeated parameter gives several), per PS3.4 C.2.2.2. */
function matchKey(attr: Attribute, rawValues: string[]): MatchKey | null {
  const { keyword, vr } = attr;
  if (RETURN_ONLY.has(attr.tag)) return null;
  const key = (matcher: Matcher): MatchKey => ({ ...attr, matcher });
  const values = rawValues.map((v) => v.trim());
  // Values of the indexed keys are at most 64 characters per component (PS3.5 6.2); a far longer pattern can only
  // cost time, so it is refused. UID lists are measured per UID below.
  if (vr !== 'UI' && vr !== 'CS' && values.some((v) => v.length > MAX_MATCH_LENGTH)) throw new QidoQueryError(`${keyword}: matching value longer than ${MAX_MATCH_LENGTH} characters`);
  if (vr === 'UI' || vr === 'CS') {
    // PS3.18 8.3.4.1 uid-list-match is comma separated (1#value); PS3.4 C.2.2.2.2 uses backslash; both accepted
    const list = values.flatMap((v) => v.split(/[,\\]/)).map((v) => v.trim());
    if (list.length === 1 && list[0] === '') return key({ kind: 'universal' });
    if (list.length > MAX_LIST_VALUES) throw new QidoQueryError(`${keyword}: more than ${MAX_LIST_VALUES} values in its list`);
    if (list.some((v) => v.length > MAX_MATCH_LENGTH)) throw new QidoQueryError(`${keyword}: matching value longer than ${MAX_MATCH_LENGTH} characters`);
    if (list.some((v) => v === '')) throw new QidoQueryError(`${keyword} has an empty value in its list`);
    if (vr === 'UI') {
      for (const u of list) {
        if (u.includes('*') || u.includes('?')) throw new QidoQueryError(`wildcards are not allowed in UIDs (${keyword})`);
        if (u.length > 64 || !UID_RE.test(u)) throw new QidoQueryError(`${keyword} is not a valid UID: "${clip(u)}"`);
      }
    } else if (list.length > 1 && list.some((v) => /[*?]/.test(v))) {
      throw new QidoQueryError(`${keyword}: wildcards are not allowed in a list of values`);
    }
    if (list.length > 1) return key({ kind: 'list', values: [...new Set(list)] });
    return key(textMatcher(list[0]));
  }
  if (values.length > 1) throw new QidoQueryError(`${keyword} given more than once (only UID and CS keys take several values)`);
  const v = values[0];
  if (v === '') return key({ kind: 'universal' });
  if (vr === 'SQ') throw new UnsupportedQueryKey(`sequence matching is not supported (${keyword}); an empty value returns it`);
  if (BINARY_VRS.has(vr)) throw new UnsupportedQueryKey(`${keyword} has a binary VR and cannot be matched`);
  if (v.includes('\\')) throw new QidoQueryError(`${keyword}: multiple values are only accepted for UID and CS keys`);
  if (vr === 'DA' || vr === 'TM' || vr === 'DT') return key(dateMatcher(keyword, vr, v));
  if (NUMERIC_VRS.has(vr)) {
    const decimal = vr === 'DS' || vr === 'FL' || vr === 'FD';
    const re = decimal ? /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/ : /^[+-]?[0-9]{1,20}$/;
    const n = Number(v);
    if (!re.test(v) || !Number.isFinite(n)) throw new QidoQueryError(`${keyword} must be a ${decimal ? 'number' : 'whole number'}`);
    return key({ kind: 'single', value: n });
  }
  if (vr === 'AT') {
    if (!/^[0-9A-Fa-f]{8}$/.test(v)) throw new QidoQueryError(`${keyword} must be a tag of 8 hex digits`);
    return key({ kind: 'single', value: v.toUpperCase() });
  }
  if (/[*?]/.test(v) && !WILDCARD_VRS.has(vr)) throw new QidoQueryError(`wildcards are not allowed for ${keyword} (VR ${vr})`);
  return key(textMatcher(v));
}

function textMatcher(v: string): Matcher {
  if (/^\*+$/.test(v)) return { kind: 'universal' }; // C.2.2.2.4: "*" is equivalent to Universal Matching
  // "**" matches what "*" does; collapsing runs keeps the matcher's work (|value| x |pattern|) small
  if (/[*?]/.test(v)) return { kind: 'wildcard', pattern: v.replace(/\*+/g, '*') };
  return { kind: 'single', value: v };
}

// Templates of the full precision of each VR (PS3.5 Table 6.2-1): a partial value is widened to the range of
// everything it covers by padding its upper bound with nines. Comparison is on the strings, which order like the
// values for these fixed-width digit formats.
const HIGH: Record<string, string> = { DA: '99999999', TM: '999999.999999', DT: '99999999999999.999999' };
const DATE_RE: Record<string, RegExp> = {
  // DA: YYYYMMDD; YYYY and YYYYMM accepted too (as the whole year / month), an extension of PS3.4 C.2.2.2.5
  DA: /^[0-9]{4}(0[1-9]|1[0-2])?$|^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$/,
  TM: /^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9]|60)?)?$|^([01][0-9]|2[0-3])[0-5][0-9]([0-5][0-9]|60)\.[0-9]{1,6}$/,
  DT: /^[0-9]{4}((0[1-9]|1[0-2])((0[1-9]|[12][0-9]|3[01])(([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?)?)?)?$/,
};

/** PS3.4 C.2.2.2.5 Range Matching ("a-b", "-b", "a-") and single dates / times, as inclusive string bounds. */
function dateMatcher(keyword: string, vr: string, v: string): Matcher {
  const bound = (s: string): string => {
    // DT may carry a UTC offset (&ZZXX); it is dropped: stored values are compared as written
    const t = vr === 'DT' ? s.replace(/[+-][0-9]{4}$/, '') : s;
    if (!DATE_RE[vr].test(t)) throw new QidoQueryError(`${keyword} is not a valid ${vr} value or range: "${clip(v)}"`);
    return t;
  };
  const high = (s: string) => s + HIGH[vr].slice(s.length);
  // The range hyphen: for DT a hyphen may also start an offset, so take the split that leaves two valid sides.
  const splits = [...v.matchAll(/-/g)].map((m) => m.index!);
  if (splits.length === 0) {
    const b = bound(v);
    return vr === 'DA' && b.length === 8 ? { kind: 'single', value: b } : { kind: 'range', from: b, to: high(b) };
  }
  for (const at of splits) {
    const left = v.slice(0, at);
    const right = v.slice(at + 1);
    if (!left && !right) break;
    try {
      return { kind: 'range', from: left ? bound(left) : undefined, to: right ? high(bound(right)) : undefined };
    } catch { /* try the next hyphen */ }
  }
  throw new QidoQueryError(`${keyword} is not a valid ${vr} value or range: "${clip(v)}"`);
}

// ---------------------------------------------------------------------------------------------
// Where attributes live

type Table = 'study' | 'series' | 'instance';
const ALIAS: Record<Table, string> = { study: 's', series: 'se', instance: 'i' };
const TABLE: Record<Table, string> = { study: 'studies', series: 'series', instance: 'instances' };
const DEPTH: Record<Table, number> = { study: 0, series: 1, instance: 2 };
const LEVEL_TAGS: Record<Table, Set<string>> = {
  study: new Set(STUDY_LEVEL), series: new Set(SERIES_LEVEL), instance: new Set(INSTANCE_LEVEL),
};

/** The indexed columns of storage/index-sqlite.ts that hold an attribute's (first) value. */
const QIDO_COLUMNS: Record<Table, Record<string, string>> = {
  study: {
    '0020000D': 'study_uid', '00100010': 'patient_name', '00100020': 'patient_id', '00100030': 'patient_birth_date',
    '00100040': 'patient_sex', '00080020': 'study_date', '00080030': 'study_time', '00080050': 'accession_number',
    '00200010': 'study_id', '00081030': 'study_description', '00080090': 'referring_physician_name',
    '00201206': 'num_series', '00201208': 'num_instances',
  },
  series: {
    '0020000D': 'study_uid', '0020000E': 'series_uid', '00080060': 'modality', '00200011': 'series_number',
    '0008103E': 'series_description', '00080021': 'series_date', '00080031': 'series_time',
    '00180015': 'body_part_examined', '00400244': 'pps_start_date', '00400245': 'pps_start_time', '00201209': 'num_instances',
  },
  instance: {
    '0020000D': 'study_uid', '0020000E': 'series_uid', '00080018': 'sop_instance_uid', '00080016': 'sop_class_uid',
    '00200013': 'instance_number', '00280010': 'rows', '00280011': 'columns',
  },
};
/** Person name columns and their normalised twin (fuzzyName of index-sqlite.ts). */
const FUZZY_COLUMN: Record<string, string> = { patient_name: 'patient_name_fuzzy', referring_physician_name: 'referring_physician_name_fuzzy' };

/** The table a tag is matched and read on, seen from a query at `level`: its own level first, then the others. */
function homeOf(tag: string, level: QidoLevel): Table {
  if (QIDO_COLUMNS[level][tag] || LEVEL_TAGS[level].has(tag)) return level;
  for (const t of ['study', 'series', 'instance'] as Table[]) if (QIDO_COLUMNS[t][tag] || LEVEL_TAGS[t].has(tag)) return t;
  return 'instance'; // ingest keeps every other non-binary top-level attribute on the instance (levels.ts `searchable`)
}

// ---------------------------------------------------------------------------------------------
// SQL

interface Sql { where: string[]; params: unknown[] }

/** SQL GLOB pattern of a DICOM wildcard pattern: `*` and `?` keep their meaning, `[` is made literal. */
const globOf = (pattern: string) => pattern.replace(/\[/g, '[[]');

/** Strict upper bound of the strings that start with `prefix` (next code point on the last one), or null. */
function prefixEnd(prefix: string): string | null {
  const cps = Array.from(prefix);
  while (cps.length) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last + 1 >= 0xd800 && last + 1 <= 0xdfff ? 0xe000 : last + 1;
      return cps.join('') + String.fromCodePoint(next);
    }
  }
  return null;
}

/**
 * A predicate on one value expression. `pn` is set for PN values: `raw` is the Alphabetic name, `fuzzy` the
 * normalised twin column if there is one.
 */
function predicate(key: MatchKey, expr: string, fuzzy: boolean, sql: Sql, fuzzyCol?: string): string | null {
  const m = key.matcher;
  if (key.vr === 'PN' && (m.kind === 'single' || m.kind === 'wildcard')) {
    const pattern = m.kind === 'single' ? String(m.value) : m.pattern;
    return pnCondition(expr, pattern, fuzzy, sql, fuzzyCol);
  }
  switch (m.kind) {
    case 'universal': return null;
    case 'single': sql.params.push(m.value); return `${expr} = ?`;
    case 'wildcard': sql.params.push(globOf(m.pattern)); return `${expr} GLOB ?`;
    case 'list': sql.params.push(...m.values); return `${expr} IN (${m.values.map(() => '?').join(', ')})`;
    case 'range': {
      const c: string[] = [];
      if (m.from !== undefined) { c.push(`${expr} >= ?`); sql.params.push(m.from); }
      if (m.to !== undefined) { c.push(`${expr} <= ?`); sql.params.push(m.to); }
      return c.join(' AND ');
    }
  }
}

/**
 * Person names (PS3.4 C.2.2.2.1 and C.2.2.2.4 allow PN matching insensitive to case; we are, and to nothing else
 * unless fuzzymatching). Literal matching narrows by the indexed `_fuzzy` column on the pattern's literal prefix
 * (normalised the same way), then checks the exact rule in qido_pn. Fuzzy matching (PS3.18 8.3.4.2) is
 * implementation-defined: here each word of the query must begin some component word of the name, case and
 * accents ignored ("jo" matches "Smith^John", "muller" matches "Müller^Jürgen").
 */
function pnCondition(raw: string, pattern: string, fuzzy: boolean, sql: Sql, fuzzyCol?: string): string {
  if (fuzzy) {
    sql.params.push(pattern);
    return `qido_pn(${fuzzyCol ?? raw}, ?, 1)`;
  }
  const c: string[] = [];
  const literal = pattern.split('=')[0].split(/[*?]/)[0];
  const prefix = fuzzyName(literal);
  if (fuzzyCol && prefix) {
    const end = prefixEnd(prefix);
    c.push(`${fuzzyCol} >= ?`); sql.params.push(prefix);
    if (end) { c.push(`${fuzzyCol} < ?`); sql.params.push(end); }
  }
  c.push(`qido_pn(${raw}, ?, 0)`); sql.params.push(pattern);
  return c.join(' AND ');
}

/**
 * The condition of one key on table `t` under alias `a`. In a correlated subquery (`correlated`) the column is
 * written `+col`, which keeps SQLite from driving the subquery by that column's index (e.g. all PT series of the
 * archive, for every study) instead of by the link to the outer row.
 */
function keyCondition(key: MatchKey, t: Table, a: string, fuzzy: boolean, sql: Sql, correlated = false): string | null {
  if (key.matcher.kind === 'universal') return null;
  const column = QIDO_COLUMNS[t][key.tag];
  if (column) {
    const fuzzyCol = FUZZY_COLUMN[column] ? `${a}.${FUZZY_COLUMN[column]}` : undefined;
    return predicate(key, `${correlated ? '+' : ''}${a}.${column}`, fuzzy, sql, fuzzyCol);
  }
  // Any value of a multi-valued attribute may match (PS3.4 C.2.2.2: "a value of the attribute").
  const value = key.vr === 'PN' ? `json_extract(je.value, '$.Alphabetic')` : 'je.value';
  const p = predicate(key, value, fuzzy, sql);
  return p && `EXISTS (SELECT 1 FROM json_each(${a}.attrs, '$."${key.tag}".Value') je WHERE ${p})`;
}

function buildWhere(q: QidoQuery, scope: Scope): Sql {
  const sql: Sql = { where: [], params: [] };
  const level = q.level;
  if (scope.studyUID) { sql.where.push(`${ALIAS[level]}.study_uid = ?`); sql.params.push(scope.studyUID); }
  if (scope.seriesUID) { sql.where.push(`${ALIAS[level]}.series_uid = ?`); sql.params.push(scope.seriesUID); }
  const below: Record<string, string[]> = { series: [], instance: [] };
  const belowParams: Record<string, unknown[]> = { series: [], instance: [] };
  for (const key of q.match) {
    if (key.tag === '00080005') continue; // PS3.4 C.2.2.2: Specific Character Set is never matched
    if (key.matcher.kind === 'universal') continue;
    if (key.tag === '00080056') { // Instance Availability: everything here is ONLINE
      sql.where.push(matchesText(key, 'ONLINE') ? '1' : '0');
      continue;
    }
    if (key.tag === '00080061' || key.tag === '00080062') {
      // ModalitiesInStudy / SOPClassesInStudy: any value of the study's list matches (the backslash-joined
      // `modalities` / `sop_classes` columns); a wildcard looks at the series / instances themselves.
      const m = key.matcher;
      const column = key.tag === '00080061' ? 's.modalities' : 's.sop_classes';
      if (m.kind === 'single' || m.kind === 'list') {
        const values = m.kind === 'single' ? [String(m.value)] : m.values;
        sql.where.push(`(${values.map(() => `instr('\\' || coalesce(${column}, '') || '\\', ?) > 0`).join(' OR ')})`);
        sql.params.push(...values.map((v) => `\\${v}\\`));
      } else {
        const sub: Sql = { where: [], params: [] };
        const inner = key.tag === '00080061' ? predicate({ ...key, vr: 'CS' }, 'm.modality', false, sub) : predicate(key, 'm.sop_class_uid', false, sub);
        const from = key.tag === '00080061' ? 'series' : 'instances';
        sql.where.push(`EXISTS (SELECT 1 FROM ${from} m WHERE m.study_uid = s.study_uid AND ${inner})`);
        sql.params.push(...sub.params);
      }
      continue;
    }
    const home = homeOf(key.tag, level);
    if (DEPTH[home] <= DEPTH[level]) {
      const c = keyCondition(key, home, ALIAS[home], q.fuzzymatching, sql);
      if (c) sql.where.push(c);
    } else {
      const sub: Sql = { where: [], params: [] };
      const c = keyCondition(key, home, `${ALIAS[home]}x`, q.fuzzymatching, sub, true);
      if (c) { below[home].push(c); belowParams[home].push(...sub.params); }
    }
  }
  // Keys of a lower level match when one entity below matches all of them (one EXISTS per table).
  for (const t of ['series', 'instance'] as Table[]) {
    if (!below[t].length) continue;
    const link = level === 'study' ? 'study_uid' : 'series_uid';
    sql.where.push(`EXISTS (SELECT 1 FROM ${TABLE[t]} ${ALIAS[t]}x WHERE ${ALIAS[t]}x.${link} = ${ALIAS[level]}.${link} AND ${below[t].join(' AND ')})`);
    sql.params.push(...belowParams[t]);
  }
  return sql;
}

function matchesText(key: MatchKey, value: string): boolean {
  const m = key.matcher;
  if (m.kind === 'single') return m.value === value;
  if (m.kind === 'list') return m.values.includes(value);
  if (m.kind === 'wildcard') return wildcardMatches(m.pattern, value);
  return true;
}

// Study order (our choice; PS3.18 leaves it to the origin server): newest first by Study Date then Study Time,
// Study Instance UID to make paging stable. Series by Series Number, instances by Instance Number, UIDs last.
const STUDY_ORDER = 's.study_date DESC, s.study_time DESC, s.study_uid';
const SERIES_ORDER = 'se.series_number IS NULL, se.series_number, se.series_uid';
const INSTANCE_ORDER = 'i.instance_number IS NULL, i.instance_number, i.sop_instance_uid';

const STUDY_COLS = 's.study_uid, s.attrs AS study_attrs, s.modalities, s.sop_classes, s.num_series AS study_num_series, s.num_instances AS study_num_instances';
const SERIES_COLS = 'se.series_uid, se.attrs AS series_attrs, se.num_instances AS series_num_instances';

function fromClause(level: QidoLevel, scope: Scope): { select: string; from: string; order: string } {
  switch (level) {
    case 'study':
      return { select: STUDY_COLS, from: 'studies s', order: STUDY_ORDER };
    case 'series':
      return {
        select: `${SERIES_COLS}, ${STUDY_COLS}`, from: 'series se JOIN studies s ON s.study_uid = se.study_uid',
        order: scope.studyUID ? SERIES_ORDER : `${STUDY_ORDER}, ${SERIES_ORDER}`,
      };
    case 'instance':
      return {
        select: `i.sop_instance_uid, i.sop_class_uid, i.attrs AS instance_attrs, ${SERIES_COLS}, ${STUDY_COLS}`,
        from: 'instances i JOIN series se ON se.series_uid = i.series_uid JOIN studies s ON s.study_uid = i.study_uid',
        order: scope.seriesUID ? INSTANCE_ORDER : scope.studyUID ? `${SERIES_ORDER}, ${INSTANCE_ORDER}` : `${STUDY_ORDER}, ${SERIES_ORDER}, ${INSTANCE_ORDER}`,
      };
  }
}

// ---------------------------------------------------------------------------------------------
// SQL functions and statements, once per connection

/**
 * PS3.4 C.2.2.2.4 Wild Card Matching of the whole of `value`: `*` any run of characters (none included), `?` exactly
 * one, every other character itself; characters are code points. With `prefixOnly` the pattern need only match a
 * beginning of the value (as if it ended in `*`). No regular expression: a backtracking one took 93 s on a
 * 15-character pattern (issue 14). This is the two-pointer matcher that, on a mismatch, only moves the last `*`
 * forward by one: at most |value| x |pattern| steps, and a pattern with more literal characters than the value
 * has is refused at once.
 */
export function wildcardMatches(pattern: string, value: string, prefixOnly = false): boolean {
  const p = codePoints(pattern);
  const v = codePoints(value);
  const m = p.length;
  const n = v.length;
  let literals = 0;
  for (let i = 0; i < m; i++) if (p[i] !== STAR) literals++;
  if (literals > n) return false;
  let i = 0; let j = 0; let star = -1; let mark = 0;
  while (j < n) {
    if (i < m && p[i] === STAR) { star = i++; mark = j; }
    else if (i < m && (p[i] === QUESTION || p[i] === v[j])) { i++; j++; }
    else if (i === m && prefixOnly) return true;
    else if (star >= 0) { i = star + 1; j = ++mark; }
    else return false;
  }
  while (i < m && p[i] === STAR) i++;
  return i === m;
}

const STAR = 0x2a;
const QUESTION = 0x3f;
/** The code points of `s` (UTF-16 surrogate pairs joined), as a typed array. */
function codePoints(s: string): Uint32Array {
  const out = new Uint32Array(s.length);
  let k = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!;
    out[k++] = c;
    if (c > 0xffff) i++;
  }
  return k === s.length ? out : out.subarray(0, k);
}

/** Trailing empty components are not significant: "OB^^^^" is "OB" (PS3.5 6.2.1.1). A loop: `/[\^= ]+$/` is quadratic. */
function trimPN(s: string): string {
  let end = s.length;
  while (end > 0) { const c = s.charCodeAt(end - 1); if (c === 0x5e || c === 0x3d || c === 0x20) end--; else break; }
  return s.slice(0, end);
}

/** The person name rule of `pnCondition`: mode 0 literal, case-insensitive; mode 1 fuzzy (word prefixes). */
export function personNameMatches(value: string | null, pattern: string, fuzzy: boolean): boolean {
  if (value === null || value === undefined) return false;
  if (!fuzzy) {
    const alphabetic = pattern.split('=')[0];
    // only the Alphabetic group is indexed: a pattern on the other groups alone constrains nothing we can see
    if (alphabetic === '' && pattern.includes('=')) return true;
    return wildcardMatches(trimPN(alphabetic).toUpperCase(), trimPN(String(value)).toUpperCase());
  }
  const words = fuzzyName(String(value)).split(' ');
  const tokens = fuzzyName(pattern).split(' ').filter(Boolean);
  return tokens.every((t) => words.some((w) => wildcardMatches(t, w, true)));
}

const prepared = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function statement(db: Database.Database, text: string): Database.Statement {
  let cache = prepared.get(db);
  if (!cache) {
    cache = new Map();
    prepared.set(db, cache);
    db.function('qido_pn', { deterministic: true }, (value: unknown, pattern: unknown, mode: unknown) =>
      personNameMatches(value as string | null, String(pattern), mode === 1) ? 1 : 0);
  }
  let st = cache.get(text);
  if (!st) {
    if (cache.size > 500) cache.clear();
    st = db.prepare(text);
    cache.set(text, st);
  }
  return st;
}

/**
 * The index QIDO would add (idempotent), proposed for storage/index-sqlite.ts; nothing calls it on its own.
 * Referring Physician Name is matched like Patient Name (a range on its `_fuzzy` column narrows literal matches,
 * see `pnCondition`), but that column has no index, so the range is a scan of every study.
 */
export function ensureQidoIndexes(db: Database.Database): void {
  // Part of the schema now (storage/index-sqlite.ts); kept for indexes created by older versions.
  db.exec('CREATE INDEX IF NOT EXISTS studies_referring ON studies(referring_physician_name_fuzzy)');
}

// ---------------------------------------------------------------------------------------------
// Search

export interface Scope { studyUID?: string; seriesUID?: string }

export interface SearchOptions {
  /** DICOMweb root for RetrieveURL (PS3.18 10.6.3.3), e.g. "http://host/dicom-web" */
  baseUrl?: string;
}

/** The SELECT a search runs, with its parameters (exported for EXPLAIN QUERY PLAN in bench/qido.ts). */
export function searchSql(q: QidoQuery, scope: Scope = {}): { sql: string; params: unknown[] } {
  const w = buildWhere(q, scope);
  const f = fromClause(q.level, scope);
  const sql = `SELECT ${f.select} FROM ${f.from}${w.where.length ? ` WHERE ${w.where.join(' AND ')}` : ''} ORDER BY ${f.order} LIMIT ? OFFSET ?`;
  return { sql, params: [...w.params, q.limit ?? -1, q.offset] };
}

function run(db: Database.Database, q: QidoQuery, scope: Scope, opts: SearchOptions): JsonDataset[] {
  const { sql, params } = searchSql(q, scope);
  const rows = statement(db, sql).all(...params) as Row[];
  return rows.map((r) => toDataset(r, q, scope, opts.baseUrl ?? ''));
}

/** SQLite's plan of a search, one line per step (registers the SQL functions the plan needs). */
export function explainSearch(db: Database.Database, q: QidoQuery, scope: Scope = {}): string[] {
  const { sql, params } = searchSql(q, scope);
  statement(db, 'SELECT 1');
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
}

/** Number of matches of `q` regardless of limit and offset (for PS3.18 8.3.4.4 "additional results"). */
export function countMatches(db: Database.Database, q: QidoQuery, scope: Scope = {}): number {
  const w = buildWhere(q, scope);
  const f = fromClause(q.level, scope);
  const text = `SELECT count(*) AS n FROM ${f.from}${w.where.length ? ` WHERE ${w.where.join(' AND ')}` : ''}`;
  return (statement(db, text).get(...w.params) as { n: number }).n;
}

/** PS3.18 10.6.1: Search for Studies. */
export function searchStudies(db: Database.Database, query: QidoQuery, opts: SearchOptions = {}): JsonDataset[] {
  return run(db, { ...query, level: 'study' }, {}, opts);
}

/** PS3.18 10.6.1: Search for Series, of all studies or of one. */
export function searchSeries(db: Database.Database, query: QidoQuery, studyUID?: string, opts: SearchOptions = {}): JsonDataset[] {
  return run(db, { ...query, level: 'series' }, { studyUID }, opts);
}

/** PS3.18 10.6.1: Search for Instances, of all studies, of one study, or of one series. */
export function searchInstances(db: Database.Database, query: QidoQuery, studyUID?: string, seriesUID?: string, opts: SearchOptions = {}): JsonDataset[] {
  if (seriesUID && !studyUID) throw new QidoQueryError('a series scope needs its study');
  return run(db, { ...query, level: 'instance' }, { studyUID, seriesUID }, opts);
}

// ---------------------------------------------------------------------------------------------
// Response datasets (PS3.18 10.6.3.3, Tables 10.6.3-3 to 10.6.3-5)

interface Row {
  study_uid: string; study_attrs: string; modalities: string | null; sop_classes: string | null;
  study_num_series: number; study_num_instances: number;
  series_uid?: string; series_attrs?: string; series_num_instances?: number;
  sop_instance_uid?: string; sop_class_uid?: string; instance_attrs?: string;
}

/** Table 10.6.3-3 (plus Study Description): returned for each study. */
const STUDY_RETURN = ['00080005', '00080020', '00080030', '00080050', '00080056', '00080061', '00080090', '00080201',
  '00081190', '00100010', '00100020', '00100030', '00100040', '0020000D', '00200010', '00201206', '00201208', '00081030'];
/** Table 10.6.3-4, with the Study Instance UID of the parent. */
const SERIES_RETURN = ['00080005', '00080060', '00080201', '0008103E', '00081190', '0020000D', '0020000E', '00200011',
  '00201209', '00400244', '00400245', '00400275'];
/** Table 10.6.3-5, with the Study and Series Instance UIDs of the parents. */
const INSTANCE_RETURN = ['00080005', '00080016', '00080018', '00080056', '00080201', '00081190', '0020000D', '0020000E',
  '00200013', '00280010', '00280011', '00280100', '00280008'];
/** Returned only when stored: conditional or optional in their modules, and a zero-length one says nothing. */
const ONLY_IF_PRESENT = new Set(['00080005', '00080201', '00400275', '00280008']);

function emptyAttribute(tag: string): JsonAttribute {
  const vr = lookupTag(tag)?.vr ?? 'UN';
  return { vr: /^[A-Z]{2}$/.test(vr) ? vr : 'UN' };
}

function toDataset(r: Row, q: QidoQuery, scope: Scope, base: string): JsonDataset {
  const level = q.level;
  const study = JSON.parse(r.study_attrs) as JsonDataset;
  const series = r.series_attrs ? JSON.parse(r.series_attrs) as JsonDataset : {};
  const instance = r.instance_attrs ? JSON.parse(r.instance_attrs) as JsonDataset : {};
  const studyUrl = `${base}/studies/${r.study_uid}`;
  const computed: Record<string, JsonAttribute | undefined> = {
    '00080056': { vr: 'CS', Value: ['ONLINE'] },
    // No series with a Modality: left out unless asked for by name (see `add`). A zero-length ModalitiesInStudy
    // is valid DICOM JSON, but OHIF 3.13's study list fails on it (conformance/CONFORMANCE.md, QIDO-RS).
    '00080061': r.modalities ? { vr: 'CS', Value: r.modalities.split('\\') } : undefined,
    '00080062': r.sop_classes ? { vr: 'UI', Value: r.sop_classes.split('\\') } : { vr: 'UI' },
    '00201206': { vr: 'IS', Value: [r.study_num_series] },
    '00201208': { vr: 'IS', Value: [r.study_num_instances] },
    '0020000D': { vr: 'UI', Value: [r.study_uid] },
    '00081190': { vr: 'UR', Value: [studyUrl] },
  };
  let required = STUDY_RETURN;
  // Where attributes are read from, nearest level first; `all` adds every stored attribute of the levels the
  // query form returns (the parents' only when they are not fixed by the path).
  let sources: JsonDataset[] = [study];
  let everything: JsonDataset[] = [study];
  if (level !== 'study') {
    computed['0020000E'] = { vr: 'UI', Value: [r.series_uid!] };
    computed['00201209'] = { vr: 'IS', Value: [r.series_num_instances!] };
    computed['00081190'] = { vr: 'UR', Value: [`${studyUrl}/series/${r.series_uid}`] };
    sources = [series, study];
    everything = scope.studyUID ? [series] : [series, study];
    required = scope.studyUID ? SERIES_RETURN : [...SERIES_RETURN, ...STUDY_RETURN.filter((t) => t !== '00081190')];
  }
  if (level === 'instance') {
    computed['00080018'] = { vr: 'UI', Value: [r.sop_instance_uid!] };
    computed['00080016'] = { vr: 'UI', Value: [r.sop_class_uid!] };
    computed['00081190'] = { vr: 'UR', Value: [`${studyUrl}/series/${r.series_uid}/instances/${r.sop_instance_uid}`] };
    sources = [instance, series, study];
    // Table 10.6.3-5: series attributes unless the series is in the path, study attributes unless the study is
    everything = scope.seriesUID ? [instance] : scope.studyUID ? [instance, series] : [instance, series, study];
    const seriesPart = SERIES_RETURN.filter((t) => t !== '00081190');
    const studyPart = STUDY_RETURN.filter((t) => t !== '00081190');
    required = scope.seriesUID ? INSTANCE_RETURN : scope.studyUID ? [...INSTANCE_RETURN, ...seriesPart] : [...INSTANCE_RETURN, ...seriesPart, ...studyPart];
  }

  const out: JsonDataset = {};
  if (q.includefield === 'all') for (const ds of [...everything].reverse()) Object.assign(out, ds);
  const add = (tag: string, always: boolean, named = false) => {
    if (tag in computed) {
      const c = computed[tag];
      if (c) out[tag] = c;
      else if (named) out[tag] = emptyAttribute(tag);
      return;
    }
    for (const ds of sources) if (ds[tag]) { out[tag] = ds[tag]; return; }
    if (always && !out[tag]) out[tag] = emptyAttribute(tag);
  };
  for (const tag of required) add(tag, !ONLY_IF_PRESENT.has(tag));
  // Matching keys and includefield attributes (PS3.18 10.6.3.3): zero-length when the entity has no value, as in
  // a C-FIND response; attributes of lower levels have no single value here and are left out.
  const extra = [...q.match.map((k) => k.tag), ...(q.includefield === 'all' ? [] : q.includefield)];
  for (const tag of extra) add(tag, DEPTH[homeOf(tag, level)] <= DEPTH[level] || tag in computed, true);
  const sorted: JsonDataset = {};
  for (const tag of Object.keys(out).sort()) sorted[tag] = out[tag];
  return sorted;
}
