/**
 * The DICOM JSON model (PS3.18 Annex F) is the lingua franca between ingest, storage, the
 * rendering library and HTTP. Tags are 8 upper-case hex digits ("00280010").
 */
export interface PersonName { Alphabetic?: string; Ideographic?: string; Phonetic?: string }

export interface JsonAttribute {
  vr: string;
  Value?: Array<string | number | PersonName | JsonDataset | null>;
  InlineBinary?: string;
  BulkDataURI?: string;
}

export type JsonDataset = Record<string, JsonAttribute>;

/** First value of an attribute, or undefined. */
export function first(ds: JsonDataset, tag: string): any {
  const a = ds[tag];
  return a && a.Value && a.Value.length > 0 ? a.Value[0] : undefined;
}

export function str(ds: JsonDataset, tag: string): string | undefined {
  const v = first(ds, tag);
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') return (v as PersonName).Alphabetic;
  return String(v);
}

export function num(ds: JsonDataset, tag: string): number | undefined {
  const v = first(ds, tag);
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function nums(ds: JsonDataset, tag: string): number[] {
  const a = ds[tag];
  if (!a || !a.Value) return [];
  return a.Value.map((v) => (typeof v === 'number' ? v : Number(v))).filter((n) => Number.isFinite(n));
}

export function seq(ds: JsonDataset, tag: string): JsonDataset[] {
  const a = ds[tag];
  return a && a.Value ? (a.Value.filter((v) => v && typeof v === 'object') as JsonDataset[]) : [];
}

/** Binary value of an attribute held inline (base64), as bytes. */
export function binary(ds: JsonDataset, tag: string): Buffer | undefined {
  const a = ds[tag];
  return a && a.InlineBinary !== undefined ? Buffer.from(a.InlineBinary, 'base64') : undefined;
}
