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
  if (!descAttr || !dataAttr) return null;
  const d = attrNumbers(descAttr, descAttr.vr === 'SS');
  if (d.length < 3) return null;
  let count = d[0] === 0 ? 65536 : d[0] < 0 ? d[0] + 65536 : d[0];
  let firstMapped = d[1];
  if (signed && firstMapped > 32767) firstMapped -= 65536;
  if (!signed && firstMapped < 0) firstMapped += 65536;
  let bits = d[2];

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
  if (data.length === 0) return null;
  if (data.length !== count) count = Math.min(count, data.length);
  data = data.slice(0, count);
  if (bits < 8 || bits > 16) {
    const max = Math.max(...data);
    bits = Math.min(16, Math.max(8, max > 0 ? Math.floor(Math.log2(max)) + 1 : 8));
  }
  const mask = 2 ** bits - 1;
  for (let i = 0; i < data.length; i++) data[i] &= mask;
  const lut: LutData = { firstMapped, bits, data };
  if (explanation) lut.explanation = explanation;
  return lut;
}

/** PS3.3 C.7.6.3.1.5/6 Palette Color Lookup Table Descriptor and Data (non-segmented). */
function palette(ds: JsonDataset, signed: boolean): PaletteDescription | null {
  const red = readLut(ds[T.RedPaletteDescriptor], ds[T.RedPaletteData], signed);
  const green = readLut(ds[T.GreenPaletteDescriptor], ds[T.GreenPaletteData], signed);
  const blue = readLut(ds[T.BluePaletteDescriptor], ds[T.BluePaletteData], signed);
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
      // retired: overlay in the unused high bits of Pixel Data (Overlay Bits Allocated = Bits Allocated);
      // the decoded frame no longer carries those bits, so it is recorded but cannot be drawn.
      o.embedded = true;
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

