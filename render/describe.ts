/**
 * describeImage: read, once at ingest, everything the renderer needs from a dataset (DICOM JSON, binary
 * values as InlineBinary, Pixel Data absent) into a plain-JSON ImageDescription that storage keeps and
 * requests load. Each block cites the PS3.3 module it reads.
 */
import { JsonAttribute, JsonDataset, num, nums, seq, str } from '../dicom/json';
import type {
  FrameGroupDescription, FrameInfo, ImageDescription, LutData, ModalityLutDescription, OverlayDescription,
  PaletteDescription, VoiDescription, VoiLutFunction, WindowDescription,
} from './types';

const T = {
  SOPInstanceUID: '00080018',
  Modality: '00080060',
  SamplesPerPixel: '00280002',
  PhotometricInterpretation: '00280004',
  PlanarConfiguration: '00280006',
  NumberOfFrames: '00280008',
  Rows: '00280010',
  Columns: '00280011',
  BitsAllocated: '00280100',
  BitsStored: '00280101',
  HighBit: '00280102',
  PixelRepresentation: '00280103',
  PixelPaddingValue: '00280120',
  PixelPaddingRangeLimit: '00280121',
  WindowCenter: '00281050',
  WindowWidth: '00281051',
  RescaleIntercept: '00281052',
  RescaleSlope: '00281053',
  RescaleType: '00281054',
  WindowCenterWidthExplanation: '00281055',
  VOILUTFunction: '00281056',
  RedPaletteDescriptor: '00281101',
  GreenPaletteDescriptor: '00281102',
  BluePaletteDescriptor: '00281103',
  RedPaletteData: '00281201',
  GreenPaletteData: '00281202',
  BluePaletteData: '00281203',
  SegmentedRedPaletteData: '00281221',
  SegmentedGreenPaletteData: '00281222',
  SegmentedBluePaletteData: '00281223',
  ModalityLUTSequence: '00283000',
  LUTDescriptor: '00283002',
  LUTExplanation: '00283003',
  ModalityLUTType: '00283004',
  LUTData: '00283006',
  VOILUTSequence: '00283010',
  FrameVOILUTSequence: '00289132',
  PixelValueTransformationSequence: '00289145',
  PresentationLUTShape: '20500020',
  SharedFunctionalGroupsSequence: '52009229',
  PerFrameFunctionalGroupsSequence: '52009230',
  FloatPixelData: '7FE00008',
  DoubleFloatPixelData: '7FE00009',
} as const;

/** Returns null when the dataset has no image (no Rows/Columns/Photometric Interpretation). */
export function describeImage(ds: JsonDataset): ImageDescription | null {
  const rows = num(ds, T.Rows);
  const columns = num(ds, T.Columns);
  const photometric = str(ds, T.PhotometricInterpretation)?.trim().toUpperCase();
  const bitsAllocated = num(ds, T.BitsAllocated);
  if (!rows || !columns || !photometric || !bitsAllocated) return null;

  const pixelRepresentation = num(ds, T.PixelRepresentation) ?? 0;
  const bitsStored = num(ds, T.BitsStored) ?? bitsAllocated;
  const frame: FrameInfo = {
    rows,
    columns,
    bitsAllocated,
    bitsStored,
    highBit: num(ds, T.HighBit) ?? bitsStored - 1,
    pixelRepresentation,
    samplesPerPixel: num(ds, T.SamplesPerPixel) ?? 1,
    photometricInterpretation: photometric,
    planarConfiguration: num(ds, T.PlanarConfiguration) ?? 0,
  };
  if (T.FloatPixelData in ds) frame.pixelFormat = 'float32';
  else if (T.DoubleFloatPixelData in ds) frame.pixelFormat = 'float64';
  if (bitsAllocated === 8 && ds['7FE00010']?.vr === 'OW') frame.pixelDataOW = true;

  const signed = pixelRepresentation === 1;
  const desc: ImageDescription = {
    frame,
    numberOfFrames: Math.max(1, Math.trunc(num(ds, T.NumberOfFrames) ?? 1)),
    modality: str(ds, T.Modality),
    sopInstanceUID: str(ds, T.SOPInstanceUID),
    modalityLut: modalityLut(ds, signed) ?? { kind: 'rescale', slope: 1, intercept: 0 },
    voi: voi(ds, signed, false) ?? { windows: [], function: 'LINEAR', luts: [] },
    overlays: overlays(ds, frame),
  };
  const shape = str(ds, T.PresentationLUTShape)?.trim().toUpperCase();
  if (shape === 'IDENTITY' || shape === 'INVERSE') desc.presentationLutShape = shape;
  // PS3.3 C.7.5.1.1.2: Pixel Padding Value has the VR of the pixel data (US or SS)
  const pad = num(ds, T.PixelPaddingValue);
  if (pad !== undefined) desc.pixelPaddingValue = asStored(pad, signed, bitsStored);
  const padLimit = num(ds, T.PixelPaddingRangeLimit);
  if (padLimit !== undefined) desc.pixelPaddingRangeLimit = asStored(padLimit, signed, bitsStored);
  if (photometric === 'PALETTE COLOR') {
    const p = palette(ds, signed);
    if (p) desc.palette = p;
  }

  // PS3.3 C.7.6.16 Multi-frame Functional Groups: Pixel Value Transformation (C.7.6.16.2.9) and
  // Frame VOI LUT (C.7.6.16.2.10), shared or per frame.
  const shared = seq(ds, T.SharedFunctionalGroupsSequence)[0];
  if (shared) {
    const g = frameGroup(shared, signed);
    if (g) desc.sharedGroup = g;
  }
  const perFrame = seq(ds, T.PerFrameFunctionalGroupsSequence);
  if (perFrame.length > 0) {
    const groups = perFrame.map((item) => frameGroup(item, signed));
    if (groups.some((g) => g !== null)) desc.perFrameGroups = groups;
  }
  return desc;
}

function frameGroup(item: JsonDataset, signed: boolean): FrameGroupDescription | null {
  const g: FrameGroupDescription = {};
  const pvt = seq(item, T.PixelValueTransformationSequence)[0];
  if (pvt) {
    const m = modalityLut(pvt, signed);
    if (m) g.modalityLut = m;
  }
  const fvoi = seq(item, T.FrameVOILUTSequence)[0];
  if (fvoi) {
    const v = voi(fvoi, signed, true);
    if (v) g.voi = v;
  }
  return g.modalityLut || g.voi ? g : null;
}

/** PS3.3 C.11.1 Modality LUT Module: a Modality LUT Sequence item takes precedence over rescale. */
function modalityLut(ds: JsonDataset, signed: boolean): ModalityLutDescription | null {
  const item = seq(ds, T.ModalityLUTSequence)[0];
  if (item) {
    const lut = lutItem(item, signed);
    if (lut) return { kind: 'lut', lut, type: str(item, T.ModalityLUTType) };
  }
  const slope = num(ds, T.RescaleSlope);
  const intercept = num(ds, T.RescaleIntercept);
  if (slope === undefined && intercept === undefined) return null;
  // a Rescale Slope of 0 makes every pixel one value; DCMTK ignores such a slope, so do we
  return { kind: 'rescale', slope: slope === undefined || slope === 0 ? 1 : slope, intercept: intercept ?? 0, type: str(ds, T.RescaleType) };
}

/** PS3.3 C.11.2 VOI LUT Module (or the Frame VOI LUT macro): all windows, the function, the LUT items. */
function voi(ds: JsonDataset, signed: boolean, frameLevel: boolean): VoiDescription | null {
  const centers = nums(ds, T.WindowCenter);
  const widths = nums(ds, T.WindowWidth);
  const expl = ds[T.WindowCenterWidthExplanation]?.Value ?? [];
  const windows: WindowDescription[] = [];
  for (let i = 0; i < Math.min(centers.length, widths.length); i++) {
    const w: WindowDescription = { center: centers[i], width: widths[i] };
    if (typeof expl[i] === 'string' && expl[i]) w.explanation = expl[i] as string;
    windows.push(w);
  }
  const luts: LutData[] = [];
  for (const item of seq(ds, T.VOILUTSequence)) {
    const l = lutItem(item, signed);
    if (l) luts.push(l);
  }
  const fn = str(ds, T.VOILUTFunction)?.trim().toUpperCase();
  const func: VoiLutFunction = fn === 'SIGMOID' || fn === 'LINEAR_EXACT' ? fn : 'LINEAR';
  if (windows.length === 0 && luts.length === 0 && !(frameLevel && fn)) return null;
  return { windows, function: func, luts };
}

/* -------------------------------------------------------------------------------------------- */
/* LUT Descriptor / LUT Data (C.11.1.1.1, C.11.2.1.1, C.7.6.3.1.5)                               */
/* -------------------------------------------------------------------------------------------- */

function lutItem(item: JsonDataset, signed: boolean): LutData | null {
  return readLut(item[T.LUTDescriptor], item[T.LUTData], signed, str(item, T.LUTExplanation));
}

/** A LUT Descriptor's three values, quirks resolved (see readLut). */
interface LutDescriptor { count: number; firstMapped: number; bits: number }

function lutDescriptor(descAttr: JsonAttribute | undefined, signed: boolean): LutDescriptor | null {
  if (!descAttr) return null;
  const d = attrNumbers(descAttr, descAttr.vr === 'SS');
  if (d.length < 3) return null;
  let firstMapped = d[1];
  if (signed && firstMapped > 32767) firstMapped -= 65536;
  if (!signed && firstMapped < 0) firstMapped += 65536;
  return { count: d[0] === 0 ? 65536 : d[0] < 0 ? d[0] + 65536 : d[0], firstMapped, bits: d[2] };
}

/**
 * LUT Descriptor = (number of entries, first mapped value, bits per entry).
 * - number of entries 0 means 2^16 (C.11.1.1.1);
 * - the first mapped value has the VR of the pixel data: a descriptor encoded US whose pixel data is
 *   signed is read as SS (C.11.1.1.1: "...US or SS depending on Pixel Representation");
 * - bits per entry 8..16; outside that range DCMTK infers it from the largest entry (diluptab.cc checkBits);
 * - LUT Data is US/SS/OW: with 8-bit entries some writers pack two entries per 16-bit word (OW), which
 *   we detect by the byte count (DCMTK does the same).
 */
export function readLut(descAttr: JsonAttribute | undefined, dataAttr: JsonAttribute | undefined, signed: boolean, explanation?: string): LutData | null {
  const d = lutDescriptor(descAttr, signed);
  if (!d || !dataAttr) return null;
  const count = d.count;
  let data: number[];
  const bin = attrBytes(dataAttr);
  if (bin) {
    if (bin.length === count || (bin.length === count + 1 && count % 2 === 1)) {
      data = Array.from(bin.subarray(0, count)); // 8-bit entries packed
    } else {
      const words = Math.floor(bin.length / 2);
      data = new Array(words);
      for (let i = 0; i < words; i++) data[i] = bin[2 * i] | (bin[2 * i + 1] << 8);
    }
  } else {
    data = attrNumbers(dataAttr, false).map((v) => (v < 0 ? v + 65536 : v));
  }
  return lutFromEntries(d, data, explanation);
}

/** The entries cut to the descriptor's count (or the count present, if fewer), masked to bits per entry. */
function lutFromEntries(d: LutDescriptor, entries: number[], explanation?: string): LutData | null {
  if (entries.length === 0) return null;
  const data = entries.length > d.count ? entries.slice(0, d.count) : entries;
  let bits = d.bits;
  if (bits < 8 || bits > 16) {
    let max = 0;
    for (const v of data) if (v > max) max = v;
    bits = Math.min(16, Math.max(8, max > 0 ? Math.floor(Math.log2(max)) + 1 : 8));
  }
  const mask = 2 ** bits - 1;
  for (let i = 0; i < data.length; i++) data[i] &= mask;
  const lut: LutData = { firstMapped: d.firstMapped, bits, data };
  if (explanation) lut.explanation = explanation;
  return lut;
}

/**
 * PS3.3 C.7.9.2 Segmented Palette Color Lookup Table Data, expanded into `count` entries. `codes` are the
 * data's values, each `codeBytes` bytes (2: one per OW word; 1: byte-packed, as 8-bit palettes such as
 * the well-known palettes of PS3.6 Annex B are written, and as pydicom and GDCM read them). Segments:
 * - discrete (opcode 0, C.7.9.2.1): length n, then n entries;
 * - linear (opcode 1, C.7.9.2.2): length n and Y1; entry X0 + i (i = 1..n) lies on the straight line from
 *   the previous segment's end (X0, Y0) to (X0 + n, Y1), rounded to the nearest integer (halves up);
 * - indirect (opcode 2, C.7.9.2.3): number of segments n and a 32-bit byte offset (least significant
 *   16 bits first) from the start of the data: those n segments are expanded again here; they may not
 *   be indirect themselves.
 * Returns null for data that cannot be expanded (unknown opcode, linear or indirect first, indirect to
 * indirect, segments running past the data); stops at `count` entries.
 */
export function expandSegmentedLut(codes: ArrayLike<number>, codeBytes: 1 | 2, count: number): number[] | null {
  const out: number[] = [];
  const offsetAt = (p: number) => (codeBytes === 2 ? codes[p] + codes[p + 1] * 65536
    : codes[p] + codes[p + 1] * 256 + codes[p + 2] * 65536 + codes[p + 3] * 2 ** 24);
  // expands segments from code `pos` on, at most `segments` of them; returns false on malformed data
  const expand = (start: number, segments: number, indirectAllowed: boolean): boolean => {
    let pos = start;
    for (let s = 0; s < segments && out.length < count; s++) {
      if (pos + 1 >= codes.length) return indirectAllowed; // the top level ends with the data (or a pad code)
      const opcode = codes[pos], n = codes[pos + 1];
      if (opcode === 0) {
        if (pos + 2 + n > codes.length) return false;
        for (let i = 0; i < n; i++) out.push(codes[pos + 2 + i]);
        pos += 2 + n;
      } else if (opcode === 1) {
        if (out.length === 0 || pos + 2 >= codes.length) return false;
        const y0 = out[out.length - 1], dy = codes[pos + 2] - y0;
        // nearest integer to y0 + dy * i / n, halves up, in exact integer arithmetic
        for (let i = 1; i <= n; i++) out.push(Math.floor((2 * (y0 * n + dy * i) + n) / (2 * n)));
        pos += 3;
      } else if (opcode === 2) {
        if (!indirectAllowed || out.length === 0 || pos + 1 + 4 / codeBytes >= codes.length) return false;
        const byteOffset = offsetAt(pos + 2);
        if (byteOffset % codeBytes !== 0 || !expand(byteOffset / codeBytes, n, false)) return false;
        pos += 2 + 4 / codeBytes;
      } else {
        return false;
      }
    }
    return true;
  };
  if (!expand(0, Infinity, true)) return null;
  return out.length > count ? out.slice(0, count) : out;
}

/**
 * A palette LUT from its descriptor and Segmented Palette Color Lookup Table Data (C.7.9.2). With 8 bits
 * per entry the data may be byte-packed or one value per word: the reading that expands to exactly the
 * descriptor's number of entries is taken, byte-packed first.
 */
export function readSegmentedLut(descAttr: JsonAttribute | undefined, dataAttr: JsonAttribute | undefined, signed: boolean): LutData | null {
  const d = lutDescriptor(descAttr, signed);
  if (!d || !dataAttr) return null;
  const bin = attrBytes(dataAttr);
  const words = bin ? new Uint16Array(Math.floor(bin.length / 2)).map((_, i) => bin[2 * i] | (bin[2 * i + 1] << 8))
    : attrNumbers(dataAttr, false).map((v) => (v < 0 ? v + 65536 : v));
  const readings: Array<[ArrayLike<number>, 1 | 2]> = bin && d.bits === 8 ? [[bin, 1], [words, 2]] : [[words, 2]];
  let fallback: number[] | null = null;
  for (const [codes, size] of readings) {
    const data = expandSegmentedLut(codes, size, d.count);
    if (data && data.length === d.count) return lutFromEntries(d, data);
    fallback ??= data;
  }
  return fallback && lutFromEntries(d, fallback);
}

/**
 * PS3.3 C.7.6.3.1.5/6 Palette Color Lookup Table Descriptor and Data, or, for a colour without Data,
 * its Segmented Data (C.7.9.2). Data first, as DCMTK reads it when a file has both.
 */
function palette(ds: JsonDataset, signed: boolean): PaletteDescription | null {
  const one = (desc: string, data: string, segmented: string) =>
    readLut(ds[desc], ds[data], signed) ?? readSegmentedLut(ds[desc], ds[segmented], signed);
  const red = one(T.RedPaletteDescriptor, T.RedPaletteData, T.SegmentedRedPaletteData);
  const green = one(T.GreenPaletteDescriptor, T.GreenPaletteData, T.SegmentedGreenPaletteData);
  const blue = one(T.BluePaletteDescriptor, T.BluePaletteData, T.SegmentedBluePaletteData);
  return red && green && blue ? { red, green, blue } : null;
}

/* -------------------------------------------------------------------------------------------- */
/* PS3.3 C.9.2 Overlay Plane Module, groups 6000-601E (even)                                     */
/* -------------------------------------------------------------------------------------------- */

function overlays(ds: JsonDataset, frame: FrameInfo): OverlayDescription[] {
  const out: OverlayDescription[] = [];
  for (let g = 0x6000; g <= 0x601e; g += 2) {
    const hex = g.toString(16).toUpperCase();
    const tag = (e: string) => hex + e;
    const rows = num(ds, tag('0010'));
    const columns = num(ds, tag('0011'));
    if (!rows || !columns) continue;
    const origin = nums(ds, tag('0050'));
    const type = (str(ds, tag('0040')) ?? 'G').trim().toUpperCase() === 'R' ? 'R' : 'G';
    const bitsAllocated = num(ds, tag('0100')) ?? 1;
    const bitPosition = num(ds, tag('0102')) ?? 0;
    const o: OverlayDescription = {
      group: g,
      rows,
      columns,
      originRow: origin[0] ?? 1,
      originColumn: origin[1] ?? 1,
      type,
      bitsAllocated,
      bitPosition,
      imageFrameOrigin: Math.max(1, num(ds, tag('0051')) ?? 1),
      numberOfFrames: Math.max(1, num(ds, tag('0015')) ?? 1),
    };
    const label = str(ds, tag('1500'));
    if (label) o.label = label;
    const description = str(ds, tag('0022'));
    if (description) o.description = description;
    const data = attrBytes(ds[tag('3000')]);
    if (data && data.length > 0) {
      o.data = data.toString('base64');
    } else if (bitsAllocated > 1 && frame.bitsAllocated > frame.bitsStored) {
      // retired: overlay in the unused bits of Pixel Data (Overlay Bits Allocated = Bits Allocated); the decoders
      // keep the unmasked words for it (FrameInfo.embeddedOverlays) and overlay.ts reads the plane from them.
      o.embedded = true;
      frame.embeddedOverlays = true;
    } else {
      continue;
    }
    out.push(o);
  }
  return out;
}

/* -------------------------------------------------------------------------------------------- */

function attrBytes(a: JsonAttribute | undefined): Buffer | undefined {
  if (!a) return undefined;
  if (a.InlineBinary !== undefined) return Buffer.from(a.InlineBinary, 'base64');
  return undefined;
}

function attrNumbers(a: JsonAttribute, signed16: boolean): number[] {
  if (a.Value) {
    return a.Value.map((v) => (typeof v === 'number' ? v : Number(v))).filter((n) => Number.isFinite(n));
  }
  const b = attrBytes(a);
  if (!b) return [];
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) out.push(signed16 ? b.readInt16LE(i) : b.readUInt16LE(i));
  return out;
}

function asStored(v: number, signed: boolean, bitsStored: number): number {
  if (signed && v >= 2 ** (bitsStored - 1) && v < 2 ** bitsStored) return v - 2 ** bitsStored;
  if (signed && v > 32767 && v <= 65535) return v - 65536;
  return v;
}

