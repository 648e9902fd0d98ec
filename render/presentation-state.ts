/**
 * Grayscale Softcopy Presentation States (PS3.3 A.33.1, PS3.4 N.2) applied when rendering.
 *
 * parsePresentationState reads a GSPS dataset (DICOM JSON with binary values inline) into plain JSON, once per
 * request for the PS; presentationFor picks what applies to one referenced image and frame (Softcopy VOI LUT,
 * Displayed Area, Graphic Annotation items carry their own Referenced Image Sequence); the renderer
 * (render.ts renderFrame) then runs, in the order of PS3.4 N.2.1:
 *   Modality LUT (the PS's) -> Softcopy VOI LUT -> Presentation LUT -> activated overlays -> shutters
 *   -> graphic annotations -> spatial transformation (rotation, then horizontal flip) -> displayed area
 *   -> text annotations -> viewport (PS3.18 8.3.5: query parameters apply after the presentation state).
 *
 * The VOI, Presentation LUT, overlay and spatial arithmetic follows DCMTK's dcmpstat (DVPresentationState::
 * renderPixelData, as dcmp2pgm runs it) so that the pixels agree with dcmp2pgm; DCMTK draws neither display
 * shutters other than the bitmap one, nor the displayed area, nor graphic and text annotations, so those
 * follow the geometry of PS3.3 C.7.6.11, C.10.4 and C.10.5 (see conformance/CONFORMANCE.md).
 */
import { JsonAttribute, JsonDataset, num, nums, seq, str } from '../dicom/json';
import { readLut } from './describe';
import { RenderError } from './errors';
import { annotationFont, fillSegments, type Mask } from './font';
import type { ImageDescription, LutData, ModalityLutDescription, OverlayDescription, RenderedImage, VoiLutFunction } from './types';

/* ---------------------------------------------------------------------------------------------- */
/* Plain-JSON description                                                                           */
/* ---------------------------------------------------------------------------------------------- */

/** A Referenced Image Sequence item: an image and, optionally, some of its frames. */
export interface ImageRef { sopInstanceUID: string; sopClassUID?: string; frames?: number[] }

export type PsVoi =
  | { kind: 'window'; center: number; width: number; function: VoiLutFunction }
  | { kind: 'lut'; lut: LutData }
  | { kind: 'none' };

export interface PsDisplayedArea {
  refs?: ImageRef[];
  /** 1-based (column, row) of the top left and bottom right pixels, as stored (C.10.4) */
  tlhc: [number, number];
  brhc: [number, number];
  sizeMode: 'SCALE TO FIT' | 'TRUE SIZE' | 'MAGNIFY';
  magnification?: number;
}

export interface PsShutter {
  rectangle?: { left: number; right: number; upper: number; lower: number };
  circle?: { row: number; column: number; radius: number };
  /** (row, column) vertices, 1-based */
  polygon?: Array<[number, number]>;
  /** overlay group (0x6000..0x601E) of a bitmap shutter */
  bitmapGroup?: number;
  /** Shutter Presentation Value, a P-value 0..65535 */
  value: number;
  /** Shutter Presentation Color CIELab Value (0..65535 each), used for colour output when given */
  cielab?: [number, number, number];
}

export type GraphicType = 'POINT' | 'POLYLINE' | 'INTERPOLATED' | 'CIRCLE' | 'ELLIPSE';

export interface PsGraphic { units: 'PIXEL' | 'DISPLAY'; type: GraphicType; points: number[]; filled: boolean }

export interface PsText {
  boxUnits?: 'PIXEL' | 'DISPLAY';
  box?: { tlhc: [number, number]; brhc: [number, number]; justification: 'LEFT' | 'RIGHT' | 'CENTER' };
  anchorUnits?: 'PIXEL' | 'DISPLAY';
  anchor?: [number, number];
  text: string;
}

export interface PsLayer { name: string; order: number; grey?: number; cielab?: [number, number, number] }

export interface PsAnnotation { refs?: ImageRef[]; layer: string; graphics: PsGraphic[]; texts: PsText[] }

export interface PresentationState {
  sopInstanceUID?: string;
  /** Referenced Series Sequence flattened: the images this PS applies to, in order */
  images: Array<ImageRef & { seriesUID?: string }>;
  modalityLut?: ModalityLutDescription;
  /** Softcopy VOI LUT Sequence items; an item without refs applies to every image */
  voi: Array<{ refs?: ImageRef[]; voi: PsVoi }>;
  presentationLut: { shape: 'IDENTITY' | 'INVERSE' } | { lut: LutData };
  /** Overlay planes of the PS itself (C.9.2 in the PS) */
  overlays: OverlayDescription[];
  /** groups (0x6000..0x601E) whose Overlay Activation Layer (60xx,1001) is set in the PS, and that layer */
  activated: Array<{ group: number; layer: string }>;
  rotation: 0 | 90 | 180 | 270;
  flip: boolean;
  displayedAreas: PsDisplayedArea[];
  shutter?: PsShutter;
  layers: PsLayer[];
  annotations: PsAnnotation[];
}

/** What applies to one image and frame: the renderer's input (RenderOptions.presentation). */
export interface AppliedPresentation {
  modalityLut?: ModalityLutDescription;
  voi: PsVoi;
  presentationLut: PresentationState['presentationLut'];
  /** every overlay to draw: the image's activated ones and the PS's activated ones */
  overlays: OverlayDescription[];
  /** per overlay, its grey (the activation layer's Recommended Display Grayscale Value, else white) */
  overlayGrey: number[];
  bitmapShutter?: OverlayDescription;
  shutter?: PsShutter;
  rotation: 0 | 90 | 180 | 270;
  flip: boolean;
  displayedArea?: PsDisplayedArea;
  /** in layer order, each with its colour */
  layers: Array<{ grey: number; rgb?: [number, number, number]; graphics: PsGraphic[]; texts: PsText[] }>;
}

export const GSPS_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.11.1';

/** Bounds on what one PS may ask to draw (a hostile PS must not hold a render thread): beyond them, 422. */
export const PS_LIMITS = { graphicObjects: 10000, graphicPoints: 200000, textObjects: 1000, textLength: 256, shutterVertices: 10000 };

/* ---------------------------------------------------------------------------------------------- */
/* Parsing (PS3.3 A.33.1 modules)                                                                  */
/* ---------------------------------------------------------------------------------------------- */

const T = {
  SOPInstanceUID: '00080018',
  ReferencedSeriesSequence: '00081115',
  ReferencedImageSequence: '00081140',
  ReferencedSOPClassUID: '00081150',
  ReferencedSOPInstanceUID: '00081155',
  ReferencedFrameNumber: '00081160',
  SeriesInstanceUID: '0020000E',
  ShutterShape: '00181600',
  LeftVerticalEdge: '00181602',
  RightVerticalEdge: '00181604',
  UpperHorizontalEdge: '00181606',
  LowerHorizontalEdge: '00181608',
  CenterOfCircularShutter: '00181610',
  RadiusOfCircularShutter: '00181612',
  VerticesOfThePolygonalShutter: '00181620',
  ShutterPresentationValue: '00181622',
  ShutterOverlayGroup: '00181623',
  ShutterPresentationColorCIELabValue: '00181624',
  RescaleIntercept: '00281052',
  RescaleSlope: '00281053',
  RescaleType: '00281054',
  WindowCenter: '00281050',
  WindowWidth: '00281051',
  VOILUTFunction: '00281056',
  ModalityLUTSequence: '00283000',
  ModalityLUTType: '00283004',
  LUTDescriptor: '00283002',
  LUTExplanation: '00283003',
  LUTData: '00283006',
  VOILUTSequence: '00283010',
  SoftcopyVOILUTSequence: '00283110',
  PresentationLUTSequence: '20500010',
  PresentationLUTShape: '20500020',
  GraphicAnnotationSequence: '00700001',
  GraphicLayer: '00700002',
  BoundingBoxAnnotationUnits: '00700003',
  AnchorPointAnnotationUnits: '00700004',
  GraphicAnnotationUnits: '00700005',
  UnformattedTextValue: '00700006',
  TextObjectSequence: '00700008',
  GraphicObjectSequence: '00700009',
  BoundingBoxTopLeftHandCorner: '00700010',
  BoundingBoxBottomRightHandCorner: '00700011',
  BoundingBoxTextHorizontalJustification: '00700012',
  AnchorPoint: '00700014',
  GraphicDimensions: '00700020',
  NumberOfGraphicPoints: '00700021',
  GraphicData: '00700022',
  GraphicType: '00700023',
  GraphicFilled: '00700024',
  ImageHorizontalFlip: '00700041',
  ImageRotation: '00700042',
  DisplayedAreaTopLeftHandCorner: '00700052',
  DisplayedAreaBottomRightHandCorner: '00700053',
  DisplayedAreaSelectionSequence: '0070005A',
  GraphicLayerSequence: '00700060',
  GraphicLayerOrder: '00700062',
  GraphicLayerRecommendedDisplayGrayscaleValue: '00700066',
  PresentationSizeMode: '00700100',
  PresentationPixelMagnificationRatio: '00700103',
  GraphicLayerRecommendedDisplayCIELabValue: '00700401',
};

function get(ds: JsonDataset, tag: string): JsonAttribute | undefined {
  return ds[tag] ?? ds[tag.toLowerCase()] ?? ds[tag.toUpperCase()];
}
const s = (ds: JsonDataset, tag: string) => str(ds, tag.toUpperCase())?.trim();
const n = (ds: JsonDataset, tag: string) => num(ds, tag.toUpperCase());
const ns = (ds: JsonDataset, tag: string) => nums(ds, tag.toUpperCase());
const sq = (ds: JsonDataset, tag: string) => seq(ds, tag.toUpperCase());

function imageRefs(ds: JsonDataset): ImageRef[] | undefined {
  const items = sq(ds, T.ReferencedImageSequence);
  if (items.length === 0) return undefined;
  const refs: ImageRef[] = [];
  for (const it of items) {
    const uid = s(it, T.ReferencedSOPInstanceUID);
    if (!uid) continue;
    const r: ImageRef = { sopInstanceUID: uid };
    const cls = s(it, T.ReferencedSOPClassUID);
    if (cls) r.sopClassUID = cls;
    const frames = ns(it, T.ReferencedFrameNumber).filter((f) => Number.isInteger(f) && f >= 1);
    if (frames.length) r.frames = frames;
    refs.push(r);
  }
  return refs;
}

/** Overlay groups 6000..601E present in `ds` with the given element. */
function groupsWith(ds: JsonDataset, element: string): number[] {
  const out: number[] = [];
  for (let g = 0x6000; g <= 0x601e; g += 2) {
    const tag = `${g.toString(16).toUpperCase()}${element}`;
    if (get(ds, tag) !== undefined) out.push(g);
  }
  return out;
}

function overlayOf(ds: JsonDataset, g: number): OverlayDescription | undefined {
  const t = (e: string) => `${g.toString(16).toUpperCase()}${e}`;
  const rows = n(ds, t('0010')), columns = n(ds, t('0011'));
  const data = get(ds, t('3000'));
  const b64 = data?.InlineBinary;
  if (!rows || !columns || typeof b64 !== 'string') return undefined;
  const origin = ns(ds, t('0050'));
  const type = s(ds, t('0040'))?.toUpperCase() === 'R' ? 'R' : 'G';
  return {
    group: g, rows, columns, originRow: origin[0] ?? 1, originColumn: origin[1] ?? 1, type,
    bitsAllocated: n(ds, t('0100')) ?? 1, bitPosition: n(ds, t('0102')) ?? 0,
    imageFrameOrigin: n(ds, t('0051')) ?? 1, numberOfFrames: n(ds, t('0015')) ?? 1, data: b64,
  };
}

const clampP = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? undefined : Math.max(0, Math.min(65535, Math.trunc(v))));

/** Reads a Grayscale Softcopy Presentation State. Throws RenderError (422) when it references no image. */
export function parsePresentationState(ds: JsonDataset): PresentationState {
  const images: PresentationState['images'] = [];
  for (const series of sq(ds, T.ReferencedSeriesSequence)) {
    const seriesUID = s(series, T.SeriesInstanceUID);
    for (const r of imageRefs(series) ?? []) images.push(seriesUID ? { ...r, seriesUID } : r);
  }
  if (images.length === 0) throw new RenderError('BAD_OPTION', 'the presentation state references no image', 422);

  // Modality LUT module in the PS (C.11.1): a Modality LUT Sequence, else Rescale Slope/Intercept
  let modalityLut: ModalityLutDescription | undefined;
  const mItem = sq(ds, T.ModalityLUTSequence)[0];
  const mLut = mItem && readLut(get(mItem, T.LUTDescriptor), get(mItem, T.LUTData), false, s(mItem, T.LUTExplanation));
  if (mLut) modalityLut = { kind: 'lut', lut: mLut, type: s(mItem, T.ModalityLUTType) };
  else {
    const slope = n(ds, T.RescaleSlope), intercept = n(ds, T.RescaleIntercept);
    if (slope !== undefined || intercept !== undefined) {
      modalityLut = { kind: 'rescale', slope: slope === undefined || slope === 0 ? 1 : slope, intercept: intercept ?? 0, type: s(ds, T.RescaleType) };
    }
  }

  // Softcopy VOI LUT module (C.11.8): first window of an item, else its first VOI LUT Sequence item
  const voi: PresentationState['voi'] = [];
  for (const it of sq(ds, T.SoftcopyVOILUTSequence)) {
    const centers = ns(it, T.WindowCenter), widths = ns(it, T.WindowWidth);
    const fn = s(it, T.VOILUTFunction)?.toUpperCase();
    let v: PsVoi | undefined;
    if (centers.length && widths.length && Number.isFinite(centers[0]) && widths[0] > 0) {
      const func: VoiLutFunction = fn === 'SIGMOID' || fn === 'LINEAR_EXACT' ? fn : 'LINEAR';
      v = { kind: 'window', center: centers[0], width: func === 'LINEAR' ? Math.max(1, widths[0]) : widths[0], function: func };
    } else {
      const lItem = sq(it, T.VOILUTSequence)[0];
      const lut = lItem && readLut(get(lItem, T.LUTDescriptor), get(lItem, T.LUTData), false, s(lItem, T.LUTExplanation));
      if (lut) v = { kind: 'lut', lut };
    }
    if (v) voi.push({ refs: imageRefs(it), voi: v });
  }

  // Presentation LUT module (C.11.6): a Presentation LUT Sequence item, else the shape
  let presentationLut: PresentationState['presentationLut'] = { shape: 'IDENTITY' };
  const pItem = sq(ds, T.PresentationLUTSequence)[0];
  const pLut = pItem && readLut(get(pItem, T.LUTDescriptor), get(pItem, T.LUTData), false, s(pItem, T.LUTExplanation));
  if (pLut) presentationLut = { lut: pLut };
  else if (s(ds, T.PresentationLUTShape)?.toUpperCase() === 'INVERSE') presentationLut = { shape: 'INVERSE' };

  // Overlay Plane (C.9.2) and Overlay Activation (C.11.7) modules of the PS
  const overlays: OverlayDescription[] = [];
  for (const g of groupsWith(ds, '3000')) {
    const o = overlayOf(ds, g);
    if (o) overlays.push(o);
  }
  const activated = groupsWith(ds, '1001').map((group) => ({ group, layer: s(ds, `${group.toString(16).toUpperCase()}1001`) ?? '' }));

  // Spatial Transformation (C.10.6)
  const rot = n(ds, T.ImageRotation) ?? 0;
  const rotation = (rot === 90 || rot === 180 || rot === 270 ? rot : 0) as 0 | 90 | 180 | 270;
  const flip = s(ds, T.ImageHorizontalFlip)?.toUpperCase() === 'Y';

  // Displayed Area (C.10.4)
  const displayedAreas: PsDisplayedArea[] = [];
  for (const it of sq(ds, T.DisplayedAreaSelectionSequence)) {
    const tl = ns(it, T.DisplayedAreaTopLeftHandCorner), br = ns(it, T.DisplayedAreaBottomRightHandCorner);
    if (tl.length < 2 || br.length < 2) continue;
    const mode = s(it, T.PresentationSizeMode)?.toUpperCase();
    const a: PsDisplayedArea = {
      tlhc: [tl[0], tl[1]], brhc: [br[0], br[1]],
      sizeMode: mode === 'TRUE SIZE' || mode === 'MAGNIFY' ? mode : 'SCALE TO FIT',
    };
    const mag = n(it, T.PresentationPixelMagnificationRatio);
    if (mag !== undefined && mag > 0 && Number.isFinite(mag)) a.magnification = mag;
    const refs = imageRefs(it);
    if (refs) a.refs = refs;
    displayedAreas.push(a);
  }

  // Display Shutter (C.7.6.11) and Bitmap Display Shutter (C.7.6.15)
  let shutter: PsShutter | undefined;
  const shapes = (get(ds, T.ShutterShape)?.Value ?? []).map((v) => String(v).trim().toUpperCase());
  if (shapes.length) {
    const sh: PsShutter = { value: clampP(n(ds, T.ShutterPresentationValue)) ?? 0 };
    const lab = ns(ds, T.ShutterPresentationColorCIELabValue);
    if (lab.length === 3) sh.cielab = [lab[0], lab[1], lab[2]];
    if (shapes.includes('RECTANGULAR')) {
      const l = n(ds, T.LeftVerticalEdge), r = n(ds, T.RightVerticalEdge), u = n(ds, T.UpperHorizontalEdge), lo = n(ds, T.LowerHorizontalEdge);
      if (l !== undefined && r !== undefined && u !== undefined && lo !== undefined) sh.rectangle = { left: l, right: r, upper: u, lower: lo };
    }
    if (shapes.includes('CIRCULAR')) {
      const c = ns(ds, T.CenterOfCircularShutter), rad = n(ds, T.RadiusOfCircularShutter);
      if (c.length >= 2 && rad !== undefined) sh.circle = { row: c[0], column: c[1], radius: rad };
    }
    if (shapes.includes('POLYGONAL')) {
      const v = ns(ds, T.VerticesOfThePolygonalShutter);
      if (v.length > 2 * PS_LIMITS.shutterVertices) throw new RenderError('BAD_OPTION', `polygonal shutter of more than ${PS_LIMITS.shutterVertices} vertices`, 422);
      if (v.length >= 6) {
        sh.polygon = [];
        for (let i = 0; i + 1 < v.length; i += 2) sh.polygon.push([v[i], v[i + 1]]);
      }
    }
    if (shapes.includes('BITMAP')) {
      const g = n(ds, T.ShutterOverlayGroup);
      if (g !== undefined && g >= 0x6000 && g <= 0x601e && g % 2 === 0) sh.bitmapGroup = g;
    }
    if (sh.rectangle || sh.circle || sh.polygon || sh.bitmapGroup !== undefined) shutter = sh;
  }

  // Graphic Layer (C.10.7) and Graphic Annotation (C.10.5)
  const layers: PsLayer[] = [];
  for (const it of sq(ds, T.GraphicLayerSequence)) {
    const name = s(it, T.GraphicLayer);
    if (!name) continue;
    const l: PsLayer = { name, order: n(it, T.GraphicLayerOrder) ?? 0 };
    const grey = clampP(n(it, T.GraphicLayerRecommendedDisplayGrayscaleValue));
    if (grey !== undefined) l.grey = grey;
    const lab = ns(it, T.GraphicLayerRecommendedDisplayCIELabValue);
    if (lab.length === 3) l.cielab = [lab[0], lab[1], lab[2]];
    layers.push(l);
  }
  const units = (v: string | undefined) => (v?.toUpperCase() === 'DISPLAY' ? 'DISPLAY' : 'PIXEL');
  const annotations: PsAnnotation[] = [];
  for (const it of sq(ds, T.GraphicAnnotationSequence)) {
    const a: PsAnnotation = { layer: s(it, T.GraphicLayer) ?? '', graphics: [], texts: [] };
    const refs = imageRefs(it);
    if (refs) a.refs = refs;
    for (const g of sq(it, T.GraphicObjectSequence)) {
      const type = s(g, T.GraphicType)?.toUpperCase() as GraphicType | undefined;
      if (!type || !['POINT', 'POLYLINE', 'INTERPOLATED', 'CIRCLE', 'ELLIPSE'].includes(type)) continue;
      const dims = n(g, T.GraphicDimensions) ?? 2;
      if (dims !== 2) continue;
      const pts = ns(g, T.GraphicData).filter((x) => Number.isFinite(x) && Math.abs(x) < 1e7);
      const count = Math.min(n(g, T.NumberOfGraphicPoints) ?? pts.length / 2, Math.floor(pts.length / 2));
      const need = type === 'POINT' ? 1 : type === 'CIRCLE' ? 2 : type === 'ELLIPSE' ? 4 : 2;
      if (count < need) continue;
      a.graphics.push({ units: units(s(g, T.GraphicAnnotationUnits)), type, points: pts.slice(0, count * 2), filled: s(g, T.GraphicFilled)?.toUpperCase() === 'Y' });
    }
    for (const t of sq(it, T.TextObjectSequence)) {
      const text = (s(t, T.UnformattedTextValue) ?? '').replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
      if (!text) continue;
      const o: PsText = { text: [...text].slice(0, PS_LIMITS.textLength).join('') };
      const tl = ns(t, T.BoundingBoxTopLeftHandCorner), br = ns(t, T.BoundingBoxBottomRightHandCorner);
      if (tl.length >= 2 && br.length >= 2 && [...tl, ...br].every((x) => Number.isFinite(x) && Math.abs(x) < 1e7)) {
        const j = s(t, T.BoundingBoxTextHorizontalJustification)?.toUpperCase();
        o.boxUnits = units(s(t, T.BoundingBoxAnnotationUnits));
        o.box = { tlhc: [tl[0], tl[1]], brhc: [br[0], br[1]], justification: j === 'RIGHT' || j === 'CENTER' ? j : 'LEFT' };
      }
      const ap = ns(t, T.AnchorPoint);
      if (ap.length >= 2 && Number.isFinite(ap[0]) && Number.isFinite(ap[1]) && Math.abs(ap[0]) < 1e7 && Math.abs(ap[1]) < 1e7) {
        o.anchorUnits = units(s(t, T.AnchorPointAnnotationUnits));
        o.anchor = [ap[0], ap[1]];
      }
      if (o.box || o.anchor) a.texts.push(o);
    }
    if (a.graphics.length || a.texts.length) annotations.push(a);
  }
  const objects = annotations.reduce((k, a) => k + a.graphics.length, 0);
  const points = annotations.reduce((k, a) => k + a.graphics.reduce((j, g) => j + g.points.length / 2, 0), 0);
  const texts = annotations.reduce((k, a) => k + a.texts.length, 0);
  if (objects > PS_LIMITS.graphicObjects || points > PS_LIMITS.graphicPoints || texts > PS_LIMITS.textObjects) {
    throw new RenderError('BAD_OPTION', `presentation state with more than ${PS_LIMITS.graphicObjects} graphic objects, ${PS_LIMITS.graphicPoints} graphic points or ${PS_LIMITS.textObjects} text objects`, 422);
  }

  const ps: PresentationState = {
    images, voi, presentationLut, overlays, activated, rotation, flip, displayedAreas, layers, annotations,
  };
  const uid = s(ds, T.SOPInstanceUID);
  if (uid) ps.sopInstanceUID = uid;
  if (modalityLut) ps.modalityLut = modalityLut;
  if (shutter) ps.shutter = shutter;
  return ps;
}

/* ---------------------------------------------------------------------------------------------- */
/* Selection for one image and frame                                                               */
/* ---------------------------------------------------------------------------------------------- */

/** True when an item with these refs applies to (uid, frame): no refs means every image. */
function applies(refs: ImageRef[] | undefined, uid: string, frame: number): boolean {
  if (!refs) return true;
  return refs.some((r) => r.sopInstanceUID === uid && (!r.frames || r.frames.includes(frame)));
}

/** The (image, frame) pairs a PS renders: its referenced frames, or every frame of a referenced image. */
export function referencedFrames(ps: PresentationState, framesOf: (uid: string) => number): Array<{ sopInstanceUID: string; frame: number }> {
  const out: Array<{ sopInstanceUID: string; frame: number }> = [];
  for (const r of ps.images) {
    const count = framesOf(r.sopInstanceUID);
    const frames = r.frames ?? Array.from({ length: Math.max(1, count) }, (_, i) => i + 1);
    for (const f of frames) if (f <= Math.max(1, count)) out.push({ sopInstanceUID: r.sopInstanceUID, frame: f });
  }
  return out;
}

/** P-value (16 bits) to an 8-bit output value as DCMTK does for overlay shutters (dimoopxt.h). */
export function pValueTo8(p: number): number {
  return Math.trunc((255 * p) / 65535);
}

/** CIELab (PS3.3 C.10.7.1.1: 0..65535 scaled L*, a*, b*, D50) to 8-bit sRGB. */
export function cielabToRgb(lab: [number, number, number]): [number, number, number] {
  const L = (lab[0] / 65535) * 100, a = (lab[1] / 65535) * 255 - 128, b = (lab[2] / 65535) * 255 - 128;
  const fy = (L + 16) / 116, fx = fy + a / 500, fz = fy - b / 200;
  const finv = (t: number) => (t > 6 / 29 ? t * t * t : 3 * (6 / 29) ** 2 * (t - 4 / 29));
  // D50 white, then Bradford D50 -> D65
  const X50 = 0.96422 * finv(fx), Y50 = finv(fy), Z50 = 0.82521 * finv(fz);
  const X = 0.9555766 * X50 - 0.0230393 * Y50 + 0.0631636 * Z50;
  const Y = -0.0282895 * X50 + 1.0099416 * Y50 + 0.0210077 * Z50;
  const Z = 0.0122982 * X50 - 0.020483 * Y50 + 1.3299098 * Z50;
  const lin = [3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z, -0.969266 * X + 1.8760108 * Y + 0.041556 * Z, 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z];
  const g = lin.map((c) => {
    const v = c <= 0.0031308 ? 12.92 * c : 1.055 * Math.pow(Math.max(0, c), 1 / 2.4) - 0.055;
    return Math.max(0, Math.min(255, Math.round(v * 255)));
  });
  return [g[0], g[1], g[2]];
}

/**
 * What `ps` applies to frame `frame` of image `desc`. Image overlays are drawn only when the PS activates
 * their group (C.11.7) and the PS has no overlay of that group itself; a group named as bitmap shutter is a
 * shutter, not an overlay (C.7.6.15).
 */
export function presentationFor(ps: PresentationState, desc: ImageDescription, frame: number): AppliedPresentation {
  const uid = desc.sopInstanceUID ?? '';
  const voiItem = ps.voi.find((v) => applies(v.refs, uid, frame));
  const shutterGroup = ps.shutter?.bitmapGroup;
  const own = new Set(ps.overlays.map((o) => o.group));
  const layerOf = new Map(ps.activated.map((a) => [a.group, a.layer]));
  const byName = new Map(ps.layers.map((l) => [l.name, l]));
  const overlays: OverlayDescription[] = [];
  const overlayGrey: number[] = [];
  const add = (o: OverlayDescription) => {
    overlays.push(o);
    const grey = byName.get(layerOf.get(o.group) ?? '')?.grey;
    overlayGrey.push(grey !== undefined ? pValueTo8(grey) : 255);
  };
  for (const o of desc.overlays) if (layerOf.has(o.group) && !own.has(o.group) && o.group !== shutterGroup) add(o);
  for (const o of ps.overlays) if (layerOf.has(o.group) && o.group !== shutterGroup) add(o);
  let bitmapShutter: OverlayDescription | undefined;
  if (shutterGroup !== undefined) bitmapShutter = ps.overlays.find((o) => o.group === shutterGroup) ?? desc.overlays.find((o) => o.group === shutterGroup && !o.embedded);

  const layerNames = [...new Set(ps.annotations.map((a) => a.layer))]
    .sort((a, b) => (byName.get(a)?.order ?? 0) - (byName.get(b)?.order ?? 0));
  const layers: AppliedPresentation['layers'] = [];
  for (const name of layerNames) {
    const items = ps.annotations.filter((a) => a.layer === name && applies(a.refs, uid, frame));
    if (!items.length) continue;
    const l = byName.get(name);
    const entry: AppliedPresentation['layers'][number] = { grey: l?.grey !== undefined ? pValueTo8(l.grey) : 255, graphics: [], texts: [] };
    if (l?.cielab) entry.rgb = cielabToRgb(l.cielab);
    for (const a of items) { entry.graphics.push(...a.graphics); entry.texts.push(...a.texts); }
    layers.push(entry);
  }
  let voi: PsVoi = voiItem?.voi ?? { kind: 'none' };
  if (voi.kind === 'lut' && voi.lut.firstMapped > 32767 && modalityCanBeNegative(ps.modalityLut ?? desc.modalityLut, desc)) {
    // C.11.2.1.1: the first mapped value has the VR of the VOI LUT's input (here, modality values that may be
    // negative), so a US-encoded descriptor is read as signed (as describe.ts does for the image's own tables)
    voi = { kind: 'lut', lut: { ...voi.lut, firstMapped: voi.lut.firstMapped - 65536 } };
  }
  const applied: AppliedPresentation = {
    voi,
    presentationLut: ps.presentationLut,
    overlays, overlayGrey, rotation: ps.rotation, flip: ps.flip, layers,
  };
  if (ps.modalityLut) applied.modalityLut = ps.modalityLut;
  if (bitmapShutter) applied.bitmapShutter = bitmapShutter;
  if (ps.shutter) applied.shutter = ps.shutter;
  const area = ps.displayedAreas.find((a) => applies(a.refs, uid, frame));
  if (area) applied.displayedArea = area;
  return applied;
}

function modalityCanBeNegative(m: ModalityLutDescription, desc: ImageDescription): boolean {
  if (m.kind === 'lut') return false;
  const bits = desc.frame.bitsStored;
  const lo = desc.frame.pixelRepresentation === 1 ? -(2 ** (bits - 1)) : 0;
  const hi = desc.frame.pixelRepresentation === 1 ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  return Math.min(lo * m.slope + m.intercept, hi * m.slope + m.intercept) < 0;
}

/**
 * The image description as the PS shows it: its Modality LUT (rescale or table, or none) replaces the image's (the
 * functional groups' too), its Softcopy VOI replaces the image's windows, and its Presentation LUT Shape
 * replaces the image's own (PS3.4 N.2.1.1: IDENTITY shows a MONOCHROME1 image as its P-values say).
 */
export function presentedDescription(desc: ImageDescription, p: AppliedPresentation): ImageDescription {
  // A.33.1: the PS carries the Modality LUT to apply; without one none applies (as DCMTK dcmp2pgm does, also for
  // enhanced images whose functional groups carry a Pixel Value Transformation)
  const out: ImageDescription = {
    ...desc, sopInstanceUID: undefined, overlays: p.overlays, sharedGroup: undefined, perFrameGroups: undefined,
    modalityLut: p.modalityLut ?? { kind: 'rescale', slope: 1, intercept: 0 },
  };
  const v = p.voi;
  out.voi = v.kind === 'window' ? { windows: [{ center: v.center, width: v.width }], function: v.function, luts: [] }
    : v.kind === 'lut' ? { windows: [], function: 'LINEAR', luts: [v.lut] } : { windows: [], function: 'LINEAR', luts: [] };
  out.presentationLutShape = 'shape' in p.presentationLut ? p.presentationLut.shape : 'IDENTITY';
  return out;
}

/* ---------------------------------------------------------------------------------------------- */
/* Shutters (C.7.6.11, C.7.6.15), before the spatial transformation, in image pixel coordinates     */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Pixels outside the open area take the Shutter Presentation Value. Pixel (column c, row r), 1-based, lies
 * inside a rectangle when left <= c <= right and upper <= r <= lower; inside a circle when its centre is at
 * most the radius from the circle's centre; inside a polygon when its centre is (even-odd rule). With several
 * shapes only the pixels inside all of them stay visible.
 */
export function applyShutters(img: RenderedImage, p: AppliedPresentation, frameNumber: number): void {
  const sh = p.shutter;
  if (!sh) return;
  const { width: W, height: H, channels: C, data } = img;
  const colour: [number, number, number] = C === 3 && sh.cielab ? cielabToRgb(sh.cielab) : [pValueTo8(sh.value), pValueTo8(sh.value), pValueTo8(sh.value)];
  const set = (i: number) => {
    const q = i * C;
    data[q] = colour[0];
    if (C === 3) { data[q + 1] = colour[1]; data[q + 2] = colour[2]; }
  };
  if (sh.rectangle || sh.circle || sh.polygon) {
    const rect = sh.rectangle, circ = sh.circle, poly = sh.polygon;
    for (let y = 0; y < H; y++) {
      const r = y + 1;
      // polygon crossings of this row's centre line (even-odd), in columns
      let xs: number[] | undefined;
      if (poly) {
        xs = [];
        for (let i = 0; i < poly.length; i++) {
          const [r0, c0] = poly[i], [r1, c1] = poly[(i + 1) % poly.length];
          if ((r0 <= r && r1 > r) || (r1 <= r && r0 > r)) xs.push(c0 + ((r - r0) / (r1 - r0)) * (c1 - c0));
        }
        xs.sort((a, b) => a - b);
      }
      for (let x = 0; x < W; x++) {
        const c = x + 1;
        let open = true;
        if (rect && (c < rect.left || c > rect.right || r < rect.upper || r > rect.lower)) open = false;
        if (open && circ && (r - circ.row) ** 2 + (c - circ.column) ** 2 > circ.radius ** 2) open = false;
        if (open && xs) {
          let inside = false;
          for (const xc of xs) { if (xc <= c) inside = !inside; else break; }
          if (!inside) open = false;
        }
        if (!open) set(y * W + x);
      }
    }
  }
  const o = p.bitmapShutter;
  if (o?.data) {
    const bits = Buffer.from(o.data, 'base64');
    const k = frameNumber - o.imageFrameOrigin;
    if (k < 0 || k >= o.numberOfFrames) return;
    const frameBit = k * o.rows * o.columns;
    const top = o.originRow - 1, left = o.originColumn - 1;
    for (let y = Math.max(0, top); y < Math.min(H, top + o.rows); y++) {
      for (let x = Math.max(0, left); x < Math.min(W, left + o.columns); x++) {
        const bit = frameBit + (y - top) * o.columns + (x - left);
        if ((bits[bit >> 3] >> (bit & 7)) & 1) set(y * W + x);
      }
    }
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Spatial transformation (C.10.6) and displayed area (C.10.4)                                     */
/* ---------------------------------------------------------------------------------------------- */

/** Rotation clockwise, then horizontal flip (C.10.6.1: the flip applies after any rotation). */
export function applySpatial(img: RenderedImage, rotation: number, flip: boolean): RenderedImage {
  if (rotation === 0 && !flip) return img;
  const { width: W, height: H, channels: C, data } = img;
  const swap = rotation === 90 || rotation === 270;
  const w = swap ? H : W, h = swap ? W : H;
  const out = new Uint8Array(w * h * C);
  for (let y = 0; y < h; y++) {
    for (let x0 = 0; x0 < w; x0++) {
      const x = flip ? w - 1 - x0 : x0; // position in the rotated image
      let sx: number, sy: number;
      switch (rotation) {
        case 90: sx = y; sy = H - 1 - x; break;
        case 180: sx = W - 1 - x; sy = H - 1 - y; break;
        case 270: sx = W - 1 - y; sy = x; break;
        default: sx = x; sy = y;
      }
      const si = (sy * W + sx) * C, di = (y * w + x0) * C;
      for (let k = 0; k < C; k++) out[di + k] = data[si + k];
    }
  }
  return { width: w, height: h, channels: C, data: out };
}

/** A point (x = column, y = row, PIXEL units: 0..Columns, 0..Rows) of the image after rotation and flip. */
export function transformPoint(x: number, y: number, W: number, H: number, rotation: number, flip: boolean): [number, number] {
  let px: number, py: number;
  switch (rotation) {
    case 90: px = H - y; py = x; break;
    case 180: px = W - x; py = H - y; break;
    case 270: px = y; py = W - x; break;
    default: px = x; py = y;
  }
  const w = rotation === 90 || rotation === 270 ? H : W;
  return [flip ? w - px : px, py];
}

/**
 * The displayed area (C.10.4) of the transformed image: TLHC and BRHC are 1-based image pixels before the
 * spatial transformation (as DCMTK maps them, DVPresentationState::renderPixelData); the rectangle they span,
 * after rotation and flip, is cut out, with black where it lies outside the image. SCALE TO FIT and TRUE SIZE
 * give the area at one output pixel per image pixel (a bitmap has no display size; a viewport parameter then
 * scales it); MAGNIFY scales it by the Presentation Pixel Magnification Ratio (nearest neighbour).
 * Returns the image and the area's rectangle in transformed PIXEL coordinates (for DISPLAY units).
 */
export function applyDisplayedArea(img: RenderedImage, area: PsDisplayedArea | undefined, W: number, H: number, rotation: number, flip: boolean,
  maxPixels: number): { img: RenderedImage; area: { x0: number; y0: number; x1: number; y1: number }; scale: number } {
  if (!area) return { img, area: { x0: 0, y0: 0, x1: img.width, y1: img.height }, scale: 1 };
  const [ax, ay] = transformPoint(Math.min(area.tlhc[0], area.brhc[0]) - 1, Math.min(area.tlhc[1], area.brhc[1]) - 1, W, H, rotation, flip);
  const [bx, by] = transformPoint(Math.max(area.tlhc[0], area.brhc[0]), Math.max(area.tlhc[1], area.brhc[1]), W, H, rotation, flip);
  const x0 = Math.round(Math.min(ax, bx)), x1 = Math.round(Math.max(ax, bx)), y0 = Math.round(Math.min(ay, by)), y1 = Math.round(Math.max(ay, by));
  const scale = area.sizeMode === 'MAGNIFY' && area.magnification ? area.magnification : 1;
  const ow = Math.max(1, Math.round((x1 - x0) * scale)), oh = Math.max(1, Math.round((y1 - y0) * scale));
  if (ow * oh > maxPixels) throw new RenderError('BAD_VIEWPORT', 'the displayed area of the presentation state is larger than the rendering pixel limit', 422);
  const C = img.channels;
  const out = new Uint8Array(ow * oh * C);
  for (let y = 0; y < oh; y++) {
    const sy = y0 + Math.floor(y / scale);
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < ow; x++) {
      const sx = x0 + Math.floor(x / scale);
      if (sx < 0 || sx >= img.width) continue;
      const si = (sy * img.width + sx) * C, di = (y * ow + x) * C;
      for (let k = 0; k < C; k++) out[di + k] = img.data[si + k];
    }
  }
  return { img: { width: ow, height: oh, channels: C, data: out }, area: { x0, y0, x1, y1 }, scale };
}

/* ---------------------------------------------------------------------------------------------- */
/* Graphic and text annotation (C.10.5)                                                            */
/* ---------------------------------------------------------------------------------------------- */

/** Blends `colour` into the image through a coverage mask. */
function paint(img: RenderedImage, m: Mask, colour: [number, number, number]): void {
  const { width: W, height: H, channels: C, data } = img;
  const x0 = Math.max(0, m.left), x1 = Math.min(W, m.left + m.width);
  const y0 = Math.max(0, m.top), y1 = Math.min(H, m.top + m.height);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const a = m.data[(y - m.top) * m.width + (x - m.left)];
      if (a === 0) continue;
      const p = (y * W + x) * C;
      for (let k = 0; k < C; k++) data[p + k] = ((data[p + k] * (255 - a) + colour[k] * a + 127) / 255) | 0;
    }
  }
}

/**
 * A closed polygon (x, y, ...) clipped to the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman), so that a shape far
 * larger than the image (a circle of radius 10^6) costs what its visible part costs.
 */
export function clipPolygon(pts: number[], x0: number, y0: number, x1: number, y1: number): number[] {
  let poly = pts;
  const edges: Array<[(x: number, y: number) => boolean, (ax: number, ay: number, bx: number, by: number) => [number, number]]> = [
    [(x) => x >= x0, (ax, ay, bx, by) => [x0, ay + ((x0 - ax) / (bx - ax)) * (by - ay)]],
    [(x) => x <= x1, (ax, ay, bx, by) => [x1, ay + ((x1 - ax) / (bx - ax)) * (by - ay)]],
    [(_x, y) => y >= y0, (ax, ay, bx, by) => [ax + ((y0 - ay) / (by - ay)) * (bx - ax), y0]],
    [(_x, y) => y <= y1, (ax, ay, bx, by) => [ax + ((y1 - ay) / (by - ay)) * (bx - ax), y1]],
  ];
  for (const [inside, cut] of edges) {
    const n = poly.length / 2;
    if (n === 0) break;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const ax = poly[2 * ((i + n - 1) % n)], ay = poly[2 * ((i + n - 1) % n) + 1], bx = poly[2 * i], by = poly[2 * i + 1];
      const ain = inside(ax, ay), bin = inside(bx, by);
      if (bin) {
        if (!ain) out.push(...cut(ax, ay, bx, by));
        out.push(bx, by);
      } else if (ain) out.push(...cut(ax, ay, bx, by));
    }
    poly = out;
  }
  return poly;
}

/** Segments of a closed outline around the polyline pts (x, y, ...): a stroke of `width` pixels. */
function strokeSegments(pts: number[], width: number, closed: boolean): number[] {
  const segs: number[] = [];
  const h = width / 2;
  const quad = (ax: number, ay: number, bx: number, by: number) => {
    const dx = bx - ax, dy = by - ay;
    const len = Math.hypot(dx, dy);
    if (len === 0) return;
    const nx = (-dy / len) * h, ny = (dx / len) * h;
    // extend each end by half the width, so joints are covered
    const ex = (dx / len) * h, ey = (dy / len) * h;
    const p = [ax - ex + nx, ay - ey + ny, bx + ex + nx, by + ey + ny, bx + ex - nx, by + ey - ny, ax - ex - nx, ay - ey - ny];
    for (let i = 0; i < 8; i += 2) segs.push(p[i], p[i + 1], p[(i + 2) % 8], p[(i + 3) % 8]);
  };
  const count = pts.length / 2;
  for (let i = 0; i + 1 < count; i++) quad(pts[2 * i], pts[2 * i + 1], pts[2 * i + 2], pts[2 * i + 3]);
  if (closed && count > 2) quad(pts[2 * count - 2], pts[2 * count - 1], pts[0], pts[1]);
  return segs;
}

/** Each stroke quad filled on its own (clipped to the image) and painted by itself. */
function strokeMask(pts: number[], width: number, closed: boolean, W: number, H: number): Mask[] {
  const segs = strokeSegments(pts, width, closed);
  const masks: Mask[] = [];
  for (let i = 0; i < segs.length; i += 16) {
    const quad: number[] = [];
    for (let k = i; k < i + 16; k += 4) quad.push(segs[k], segs[k + 1]);
    const m = polygonMask(quad, W, H);
    if (m.width > 0) masks.push(m);
  }
  return masks;
}

function polygonMask(unclipped: number[], W: number, H: number): Mask {
  const pts = clipPolygon(unclipped, -2, -2, W + 2, H + 2);
  const segs: number[] = [];
  const count = pts.length / 2;
  for (let i = 0; i < count; i++) {
    const j = (i + 1) % count;
    segs.push(pts[2 * i], pts[2 * i + 1], pts[2 * j], pts[2 * j + 1]);
  }
  return fillSegments(segs);
}

/** Points on an ellipse with centre (cx, cy), semi-axes a (along angle t) and b. */
function ellipsePoints(cx: number, cy: number, a: number, b: number, t: number): number[] {
  const steps = Math.max(16, Math.min(720, Math.ceil(Math.max(a, b) * 2)));
  const out: number[] = [];
  const ct = Math.cos(t), st = Math.sin(t);
  for (let i = 0; i < steps; i++) {
    const u = (2 * Math.PI * i) / steps;
    const x = a * Math.cos(u), y = b * Math.sin(u);
    out.push(cx + x * ct - y * st, cy + x * st + y * ct);
  }
  return out;
}

/** Catmull-Rom spline through the points (INTERPOLATED, C.10.5.1.2: "an interpolated curve through the points"). */
function interpolate(pts: number[]): number[] {
  const count = pts.length / 2;
  if (count < 3) return pts;
  const out: number[] = [];
  const P = (i: number) => [pts[2 * Math.max(0, Math.min(count - 1, i))], pts[2 * Math.max(0, Math.min(count - 1, i)) + 1]];
  for (let i = 0; i + 1 < count; i++) {
    const [x0, y0] = P(i - 1), [x1, y1] = P(i), [x2, y2] = P(i + 1), [x3, y3] = P(i + 2);
    for (let k = 0; k < 8; k++) {
      const t = k / 8, t2 = t * t, t3 = t2 * t;
      out.push(0.5 * (2 * x1 + (-x0 + x2) * t + (2 * x0 - 5 * x1 + 4 * x2 - x3) * t2 + (-x0 + 3 * x1 - 3 * x2 + x3) * t3),
        0.5 * (2 * y1 + (-y0 + y2) * t + (2 * y0 - 5 * y1 + 4 * y2 - y3) * t2 + (-y0 + 3 * y1 - 3 * y2 + y3) * t3));
    }
  }
  out.push(pts[2 * count - 2], pts[2 * count - 1]);
  return out;
}

/** Line width of graphics: one pixel per 512 output pixels of the larger side, at least one. */
function lineWidth(img: RenderedImage): number {
  return Math.max(1, Math.round(Math.max(img.width, img.height) / 512));
}

/**
 * Draws one graphic object; `map` turns its points (x = column, y = row, in its units) into output pixels.
 * Closed shapes (a POLYLINE or INTERPOLATED whose last point is its first, CIRCLE, ELLIPSE) are filled when
 * Graphic Filled is Y.
 */
export function drawGraphic(img: RenderedImage, g: PsGraphic, colour: [number, number, number], map: (x: number, y: number) => [number, number]): void {
  const pts: number[] = [];
  for (let i = 0; i + 1 < g.points.length; i += 2) pts.push(...map(g.points[i], g.points[i + 1]));
  const lw = lineWidth(img);
  let outline: number[];
  let closed = false;
  switch (g.type) {
    case 'POINT': {
      paint(img, polygonMask(ellipsePoints(pts[0], pts[1], 1.5 * lw, 1.5 * lw, 0), img.width, img.height), colour);
      return;
    }
    case 'CIRCLE': {
      const r = Math.hypot(pts[2] - pts[0], pts[3] - pts[1]);
      outline = ellipsePoints(pts[0], pts[1], r, r, 0);
      closed = true;
      break;
    }
    case 'ELLIPSE': {
      // major axis endpoints, then minor axis endpoints (C.10.5.1.2)
      const cx = (pts[0] + pts[2]) / 2, cy = (pts[1] + pts[3]) / 2;
      const a = Math.hypot(pts[2] - pts[0], pts[3] - pts[1]) / 2, b = Math.hypot(pts[6] - pts[4], pts[7] - pts[5]) / 2;
      outline = ellipsePoints(cx, cy, a, b, Math.atan2(pts[3] - pts[1], pts[2] - pts[0]));
      closed = true;
      break;
    }
    default: {
      const k = pts.length;
      closed = k >= 6 && pts[0] === pts[k - 2] && pts[1] === pts[k - 1];
      outline = g.type === 'INTERPOLATED' ? interpolate(pts) : pts;
      if (closed) outline = outline.slice(0, outline.length - 2);
    }
  }
  if (g.filled && closed && outline.length >= 6) paint(img, polygonMask(outline, img.width, img.height), colour);
  for (const m of strokeMask(outline, lw, closed, img.width, img.height)) paint(img, m, colour);
}

/** Font size of text annotations: 1/40 of the larger output side, 11 pixels at least. */
function textSize(img: RenderedImage): number {
  return Math.max(11, Math.round(Math.max(img.width, img.height) / 40));
}

/**
 * Draws one text object: in its bounding box (top left corner, justified within the box's width), else
 * below and right of its anchor point; a dark outline keeps it readable on any background.
 */
export function drawText(img: RenderedImage, t: PsText, colour: [number, number, number], map: (x: number, y: number, units: 'PIXEL' | 'DISPLAY') => [number, number]): void {
  const font = annotationFont();
  const size = textSize(img);
  let x: number, y: number;
  if (t.box && t.boxUnits) {
    const a = map(t.box.tlhc[0], t.box.tlhc[1], t.boxUnits), b = map(t.box.brhc[0], t.box.brhc[1], t.boxUnits);
    const left = Math.min(a[0], b[0]), right = Math.max(a[0], b[0]);
    const w = font.measure(t.text, size);
    x = t.box.justification === 'RIGHT' ? right - w : t.box.justification === 'CENTER' ? (left + right - w) / 2 : left;
    y = Math.min(a[1], b[1]) + font.ascent * size;
  } else {
    const a = map(t.anchor![0], t.anchor![1], t.anchorUnits ?? 'PIXEL');
    x = a[0] + 2;
    y = a[1] + 2 + font.ascent * size;
  }
  const glyphs = font.rasterise(t.text, x, y, size, 1);
  // outline: the coverage spread by one pixel, drawn dark beneath
  const o = new Uint8Array(glyphs.data.length);
  const { width: w, height: h } = glyphs;
  for (let yy = 0; yy < h; yy++) {
    for (let xx = 0; xx < w; xx++) {
      let v = 0;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const X = xx + dx, Y = yy + dy;
        if (X >= 0 && Y >= 0 && X < w && Y < h) v = Math.max(v, glyphs.data[Y * w + X]);
      }
      o[yy * w + xx] = v;
    }
  }
  const dark = colour[0] + colour[1] + colour[2] > 384 ? 0 : 255;
  paint(img, { ...glyphs, data: o }, [dark, dark, dark]);
  paint(img, glyphs, colour);
}

/** Grey output becomes RGB when a layer or the shutter has a colour. */
export function needsColour(p: AppliedPresentation): boolean {
  return p.layers.some((l) => l.rgb !== undefined);
}

export function toRgb(img: RenderedImage): RenderedImage {
  if (img.channels === 3) return img;
  const count = img.width * img.height;
  const out = new Uint8Array(count * 3);
  for (let i = 0, j = 0; i < count; i++, j += 3) out[j] = out[j + 1] = out[j + 2] = img.data[i];
  return { width: img.width, height: img.height, channels: 3, data: out };
}

/**
 * Everything after the grey pipeline and the overlays: shutters, graphics (image coordinates, before the
 * spatial transformation, so they turn with the image), rotation and flip, displayed area, then text (after
 * the transformation, so it stays upright, at its transformed position). `img` is the frame as rendered
 * (width x height = Columns x Rows).
 */
export function finishPresentation(img: RenderedImage, p: AppliedPresentation, frameNumber: number, maxPixels: number): RenderedImage {
  if (needsColour(p)) img = toRgb(img);
  applyShutters(img, p, frameNumber);
  const W = img.width, H = img.height;
  // DISPLAY units are relative to the displayed area (C.10.5.1.1): 0\0 its top left, 1\1 its bottom right,
  // in the orientation shown, i.e. after the spatial transformation.
  const tr = (x: number, y: number) => transformPoint(x, y, W, H, p.rotation, p.flip);
  let areaRect = { x0: 0, y0: 0, x1: p.rotation === 90 || p.rotation === 270 ? H : W, y1: p.rotation === 90 || p.rotation === 270 ? W : H };
  if (p.displayedArea) {
    const a = p.displayedArea;
    const [ax, ay] = tr(Math.min(a.tlhc[0], a.brhc[0]) - 1, Math.min(a.tlhc[1], a.brhc[1]) - 1);
    const [bx, by] = tr(Math.max(a.tlhc[0], a.brhc[0]), Math.max(a.tlhc[1], a.brhc[1]));
    areaRect = { x0: Math.round(Math.min(ax, bx)), y0: Math.round(Math.min(ay, by)), x1: Math.round(Math.max(ax, bx)), y1: Math.round(Math.max(ay, by)) };
  }
  // the inverse of the spatial transformation, for DISPLAY points drawn before it
  const untr = (x: number, y: number): [number, number] => {
    const w = p.rotation === 90 || p.rotation === 270 ? H : W;
    const px = p.flip ? w - x : x, py = y;
    switch (p.rotation) {
      case 90: return [py, H - px];
      case 180: return [W - px, H - py];
      case 270: return [W - py, px];
      default: return [px, py];
    }
  };
  const displayToShown = (x: number, y: number): [number, number] => [areaRect.x0 + x * (areaRect.x1 - areaRect.x0), areaRect.y0 + y * (areaRect.y1 - areaRect.y0)];
  for (const layer of p.layers) {
    const colour: [number, number, number] = layer.rgb ?? [layer.grey, layer.grey, layer.grey];
    for (const g of layer.graphics) {
      drawGraphic(img, g, colour, (x, y) => (g.units === 'PIXEL' ? [x, y] : untr(...displayToShown(x, y))));
    }
  }
  img = applySpatial(img, p.rotation, p.flip);
  const shown = applyDisplayedArea(img, p.displayedArea, W, H, p.rotation, p.flip, maxPixels);
  img = shown.img;
  const toOut = (x: number, y: number): [number, number] => [(x - shown.area.x0) * shown.scale, (y - shown.area.y0) * shown.scale];
  for (const layer of p.layers) {
    const colour: [number, number, number] = layer.rgb ?? [layer.grey, layer.grey, layer.grey];
    for (const t of layer.texts) {
      drawText(img, t, colour, (x, y, units) => toOut(...(units === 'PIXEL' ? tr(x, y) : displayToShown(x, y))));
    }
  }
  return img;
}
