/**
 * Rendered presentation states (PS3.18 10.4.1.1.4 / 9.5, Supplement 174 "Presentation State Instance"): the
 * Instance Rendered resource of a Grayscale Softcopy Presentation State renders the images it references with
 * the presentation state applied (render/presentation-state.ts). This module finds and parses the stored PS
 * (kept parsed in a small LRU, since stored instances never change) and the stored images it references.
 */
import { ServerContext } from './context';
import { HttpError, notFound } from './errors';
import { getInstance, InstanceInfo } from './instances';
import { parseDicom } from '../dicom/parse';
import { RenderError } from '../render';
import { parsePresentationState, type PresentationState } from '../render/presentation-state';

export { GSPS_SOP_CLASS } from '../render/presentation-state';

/** A presentation state larger than this is refused (they are kilobytes; overlays in them a few more). */
const MAX_PS_BYTES = 64 * 1024 * 1024;
const CACHE_MAX = 256;
const parsed = new Map<string, PresentationState>();

export async function loadPresentationState(ctx: ServerContext, info: InstanceInfo): Promise<PresentationState> {
  const hit = parsed.get(info.sha256);
  if (hit) return hit;
  if (info.size > MAX_PS_BYTES) throw new HttpError(422, `presentation state larger than ${MAX_PS_BYTES} bytes`);
  const bytes = await ctx.blobs.readAll(info.blobKey);
  let ps: PresentationState;
  try {
    ps = parsePresentationState(parseDicom(bytes, { inlineLimit: MAX_PS_BYTES }).dataset);
  } catch (e) {
    if (e instanceof RenderError) throw new HttpError(e.status, e.message);
    throw new HttpError(422, 'the presentation state cannot be read');
  }
  if (parsed.size >= CACHE_MAX) parsed.delete(parsed.keys().next().value as string);
  parsed.set(info.sha256, ps);
  return ps;
}

/** A stored image the PS references; 404 when it is not stored here, 422 when it has no grey pixel data. */
export function referencedImage(ctx: ServerContext, ps: PresentationState, sop: string): InstanceInfo {
  const row = ctx.index.getInstance(sop);
  if (!row) throw notFound(`image ${sop}, referenced by the presentation state, is not stored`);
  const info = getInstance(ctx, row.study_uid, row.series_uid, sop);
  if (!info.render || info.frameCount === 0) throw new HttpError(422, `image ${sop}, referenced by the presentation state, has no renderable pixel data`);
  return info;
}
