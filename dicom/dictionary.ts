/**
 * Attribute dictionary (keyword <-> tag <-> VR) for implicit VR parsing and QIDO keys,
 * built once from dcmjs' copy of the PS3.6 data dictionary.
 */
import { data as dcmjsData } from 'dcmjs';

export interface DictEntry { tag: string; keyword: string; vr: string; vm: string }

const byTag = new Map<string, DictEntry>();
const byKeyword = new Map<string, DictEntry>();

for (const e of Object.values((dcmjsData as any).DicomMetaDictionary.nameMap) as any[]) {
  const tag = String(e.tag).replace(/[(),]/g, '').toUpperCase();
  if (!/^[0-9A-F]{8}$/.test(tag)) continue;
  const entry: DictEntry = { tag, keyword: e.name, vr: e.vr, vm: e.vm };
  byTag.set(tag, entry);
  byKeyword.set(e.name, entry);
}

/** Repeating groups (PS3.5 7.6): 50xx curves, 60xx overlays are listed under 5000/6000. */
function canonicalRepeatingTag(tag: string): string {
  const g = parseInt(tag.slice(0, 4), 16);
  if ((g & 0xff00) === 0x6000 || (g & 0xff00) === 0x5000) {
    if ((g & 1) === 0) return (g & 0xff00).toString(16).toUpperCase().padStart(4, '0') + tag.slice(4);
  }
  return tag;
}

export function lookupTag(tag: string): DictEntry | undefined {
  return byTag.get(tag) ?? byTag.get(canonicalRepeatingTag(tag));
}

export function lookupKeyword(keyword: string): DictEntry | undefined {
  return byKeyword.get(keyword);
}

/** VR for an implicit-VR element. Ambiguous VRs are resolved the way PS3.5 Annex A.1 asks of implicit VR. */
export function implicitVR(tag: string, pixelRepresentation: number | undefined): string {
  if (tag.endsWith('0000')) return 'UL'; // group length
  const g = parseInt(tag.slice(0, 4), 16);
  if (g & 1) {
    const el = parseInt(tag.slice(4), 16);
    return el >= 0x10 && el <= 0xff ? 'LO' : 'UN'; // private creator (PS3.5 7.8.1) or private data
  }
  const e = lookupTag(tag);
  if (!e) return 'UN';
  switch (e.vr) {
    case 'ox': return 'OW'; // PS3.5 A.1: Pixel Data and Overlay Data are OW in implicit VR
    case 'xs': return pixelRepresentation === 1 ? 'SS' : 'US';
    case 'lt': return 'US';
    case 'xw': return 'OW';
    default:
      if (e.vr.length !== 2) return 'UN';
      return e.vr.toUpperCase();
  }
}
