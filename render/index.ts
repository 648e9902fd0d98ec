/**
 * The rendering library: DICOM JSON + decoded frames in, 8-bit pixels and encoded images out.
 * It knows nothing of HTTP or storage.
 */
export { describeImage } from './describe';
export { renderFrame, renderFrame16, appliedVoi, maxReduction } from './render';
export type { AppliedVoi } from './render';
export { annotate, annotationText, annotationLayout } from './annotate';
export type { AnnotationLines, AnnotationContext, AnnotationLayout } from './annotate';
export { encodeImage, encodePng16, initRender, PNG_SETTINGS } from './encode';
export type { RenderedMediaType } from './encode';
export { RenderError } from './errors';
export { encodeGif, animateGifs } from './gif';
export type { RenderErrorCode } from './errors';
export type {
  ImageDescription, RenderOptions, RenderedImage, RenderedImage16, FrameInfo, DecodedFrame, FrameBytes, LutData,
  ModalityLutDescription, VoiDescription, OverlayDescription, PaletteDescription, FrameGroupDescription, VoiLutFunction,
} from './types';
