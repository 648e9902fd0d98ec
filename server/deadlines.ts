/**
 * Request time limits (issue 14): an idle timer alone let an upload trickling one byte every 5 s live for minutes.
 *
 * - No body, or once the body has arrived: `requestTimeoutMs` to start the response (503 after), and a response
 *   that then stalls that long (the client takes nothing) is cut.
 * - While a body arrives: it must be whole within `uploadTimeoutMs`, and arrive at `minUploadRate` bytes/s or
 *   more over every `uploadRateWindowMs` window (408 Request Timeout otherwise, and the connection is closed).
 *   A window in which the server itself held the body back (its buffers full: the upload waits on our disk) does
 *   not count against the client.
 */
import { Request, Response, NextFunction, RequestHandler } from 'express';
import { Limits } from './config';

function hasBody(req: Request): boolean {
  const length = req.get('content-length');
  return (length !== undefined && length !== '0') || req.get('transfer-encoding') !== undefined;
}

export function deadlines(limits: Limits): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const timers: NodeJS.Timeout[] = [];
    const clear = () => { for (const t of timers) { clearTimeout(t); clearInterval(t); } timers.length = 0; };
    res.once('finish', clear);
    res.once('close', clear);

    /** Answers `status` with the reason (if nothing was sent yet) and closes the connection. */
    const cut = (status: number, reason: string) => {
      clear();
      if (res.headersSent) { res.destroy(); return; }
      res.set('Connection', 'close');
      const socket = req.socket;
      // Once the answer is out, the connection is closed: the body still arriving stops, the handler sees it end.
      res.once('finish', () => { socket.destroy(); if (!req.destroyed) req.destroy(); });
      res.status(status).type('application/json').send(JSON.stringify({ error: reason }));
    };

    // Once answering has started, a response the client stops taking is cut after the same time.
    res.setTimeout(limits.requestTimeoutMs, () => { if (!res.headersSent) cut(503, 'request took longer than the time limit'); else res.destroy(); });
    const answerBy = () => {
      timers.push(setTimeout(() => { if (!res.headersSent) cut(503, 'request took longer than the time limit'); }, limits.requestTimeoutMs));
    };

    if (!hasBody(req) || req.complete) { answerBy(); next(); return; }

    const socket = req.socket;
    timers.push(setTimeout(() => {
      if (!req.complete) cut(408, `the request body took longer than ${Math.round(limits.uploadTimeoutMs / 1000)} s to arrive`);
    }, limits.uploadTimeoutMs));
    if (limits.minUploadRate > 0) {
      const window = limits.uploadRateWindowMs;
      const tick = Math.min(1000, window);
      let windowStart = Date.now();
      let bytesAtStart = socket.bytesRead;
      timers.push(setInterval(() => {
        if (req.complete) return;
        const now = Date.now();
        // The server holding the body back (its buffers full) is not the client's slowness: start again.
        if (req.readableLength > 0 || socket.isPaused()) { windowStart = now; bytesAtStart = socket.bytesRead; return; }
        if (now - windowStart < window) return;
        const rate = ((socket.bytesRead - bytesAtStart) * 1000) / (now - windowStart);
        if (rate < limits.minUploadRate) {
          cut(408, `the request body arrived slower than ${limits.minUploadRate} bytes/s`);
          return;
        }
        windowStart = now;
        bytesAtStart = socket.bytesRead;
      }, tick));
    }
    req.once('end', () => {
      // The body is in: the upload limits are done, the time to answer starts.
      clear();
      answerBy();
    });
    next();
  };
}
