/**
 * Every DICOMweb request the viewer makes, seen from both ends: the server (method, URL, Accept, status,
 * content type, time) and the browser (request, response status, or the network error Chromium reports,
 * which is where a CORS refusal shows up).
 */
import * as http from 'http';

export interface ServerEntry {
  method: string; url: string; accept: string; origin: string;
  status: number; contentType: string; bytes: number; ms: number;
}
export interface BrowserEntry { method: string; url: string; accept: string; status?: number; failure?: string }

export class RequestLog {
  readonly server: ServerEntry[] = [];
  readonly browser: BrowserEntry[] = [];

  /** Records each request of `server` when its response finishes; listens before express does. */
  attach(server: http.Server): void {
    server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const t = process.hrtime.bigint();
      const url = req.url ?? ''; // express rewrites req.url while routing under a mount path
      let bytes = 0;
      const write = res.write.bind(res) as any;
      const end = res.end.bind(res) as any;
      const count = (c: unknown) => { if (c && typeof c !== 'function') bytes += Buffer.byteLength(c as any); };
      (res as any).write = (c: unknown, ...rest: unknown[]) => { count(c); return write(c, ...rest); };
      (res as any).end = (c: unknown, ...rest: unknown[]) => { count(c); return end(c, ...rest); };
      res.on('close', () => this.server.push({
        method: req.method ?? '', url, accept: String(req.headers.accept ?? ''),
        origin: String(req.headers.origin ?? ''), status: res.statusCode,
        contentType: String(res.getHeader('content-type') ?? ''), bytes, ms: Number(process.hrtime.bigint() - t) / 1e6,
      }));
    });
  }

  /** DICOMweb requests whose response was not a success (2xx, or 304 from a revalidated cache). */
  failures(): string[] {
    const bad: string[] = [];
    for (const e of this.server) if (e.status >= 400) bad.push(`server: ${e.method} ${e.url} (Accept: ${e.accept}) -> ${e.status}`);
    for (const e of this.browser) {
      if (e.failure) bad.push(`browser: ${e.method} ${e.url} (Accept: ${e.accept}) failed: ${e.failure}`);
      else if (e.status !== undefined && e.status >= 400) bad.push(`browser: ${e.method} ${e.url} -> ${e.status}`);
    }
    return bad;
  }

  format(): string {
    const lines = ['# server side: method url | Accept | Origin -> status content-type bytes ms'];
    for (const e of this.server) {
      lines.push(`${e.method} ${e.url} | Accept: ${e.accept || '-'} | Origin: ${e.origin || '-'} -> ${e.status} ${e.contentType || '-'} ${e.bytes}B ${e.ms.toFixed(1)}ms`);
    }
    lines.push('', '# browser side: method url | Accept -> status or failure');
    for (const e of this.browser) {
      lines.push(`${e.method} ${e.url} | Accept: ${e.accept || '-'} -> ${e.failure ? `FAILED ${e.failure}` : e.status ?? 'no response'}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
