/**
 * Every failure a client can cause is an HttpError with its status and a short reason; one handler
 * (server/app.ts) turns it into a response. Nothing else reaches a client: no stack traces.
 */
export class HttpError extends Error {
  constructor(readonly status: number, reason: string) { super(reason); this.name = 'HttpError'; }
}
export const badRequest = (reason: string) => new HttpError(400, reason);
export const notFound = (reason: string) => new HttpError(404, reason);
export const notAcceptable = (reason: string) => new HttpError(406, reason);
export const conflict = (reason: string) => new HttpError(409, reason);
export const payloadTooLarge = (reason: string) => new HttpError(413, reason);
export const unsupportedMediaType = (reason: string) => new HttpError(415, reason);

/** PS3.18 UID syntax (PS3.5 9.1): digits and dots, at most 64 characters. Checked before a UID touches a path or query. */
export const UID_PATTERN = /^[0-9]+(\.[0-9]+)*$/;
export function checkUID(uid: string, what: string): string {
  if (typeof uid !== 'string' || uid.length === 0 || uid.length > 64 || !UID_PATTERN.test(uid)) {
    throw badRequest(`invalid ${what}: must be digits and dots, at most 64 characters`);
  }
  return uid;
}
