/**
 * The one error type of the codec layer. It carries a machine-readable code and a short reason that is safe to show
 * to a client (no codec internals, no stack); the HTTP status is decided in one place by the server's error handler,
 * which can switch on `code`.
 */
export type CodecErrorCode =
  | 'UNSUPPORTED_TRANSFER_SYNTAX' // we do not decode this syntax at all
  | 'UNSUPPORTED_PIXEL_FORMAT' // the syntax is known but these Image Pixel attributes are not decodable
  | 'INVALID_ATTRIBUTES' // the Image Pixel attributes contradict each other or the standard
  | 'FRAME_TOO_SHORT' // fewer bytes than the attributes require
  | 'CORRUPT_BITSTREAM' // the codec rejected the compressed data
  | 'SIZE_MISMATCH' // the bitstream decodes to other dimensions / samples than the attributes declare
  | 'NOT_INITIALIZED' // decodeFrame before initCodecs() resolved, or a codec is being reloaded after a fatal error
  | 'TOO_LARGE'; // declared size beyond what we are willing to allocate

export class CodecError extends Error {
  override readonly name = 'CodecError';
  constructor(
    readonly code: CodecErrorCode,
    /** Short, client-safe explanation. */
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}

/** Turn whatever a codec threw (Error, emscripten exception pointer, string) into a CodecError without leaking internals. */
export function codecFailure(codec: string, err: unknown): CodecError {
  if (err instanceof CodecError) return err;
  return new CodecError('CORRUPT_BITSTREAM', `${codec} could not decode the frame`);
}
