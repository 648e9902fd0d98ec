/**
 * Typed errors of the rendering library. The HTTP layer maps each to one status in one place:
 * a request that asks for something impossible (bad window, bad viewport, frame out of range) is 400,
 * a media type the library cannot produce is 406.
 */
export type RenderErrorCode =
  | 'BAD_FRAME'
  | 'BAD_WINDOW'
  | 'BAD_VIEWPORT'
  | 'BAD_OPTION'
  | 'BAD_PIXELS'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_INITIALISED';

export class RenderError extends Error {
  readonly code: RenderErrorCode;
  /** HTTP status the server should answer with */
  readonly status: number;
  constructor(code: RenderErrorCode, reason: string, status = code === 'UNSUPPORTED_MEDIA_TYPE' ? 406 : code === 'NOT_INITIALISED' ? 500 : 400) {
    super(reason);
    this.name = 'RenderError';
    this.code = code;
    this.status = status;
  }
}
