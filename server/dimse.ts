/**
 * DICOM C-ECHO and C-STORE SCP (PS3.7 DIMSE over the PS3.8 upper layer), for the modalities that cannot speak
 * STOW-RS. Each received dataset streams to a staging file behind a File Meta header naming the negotiated
 * transfer syntax, and then goes through the same ingest as STOW-RS (server/ingest.ts): the same duplicate
 * rule, durability and index. The C-STORE response is sent only once the instance is durable and indexed.
 *
 * Our own state machine rather than a library: dcmjs-dimse (the maintained npm option) hands the application a
 * dcmjs dataset, re-encoded, where ingest needs the bytes as the modality sent them, streamed to disk.
 * Only what an SCP of these two services needs is here: association negotiation (presentation contexts,
 * maximum PDU length, implementation identity), P-DATA reassembly, release and abort. No SCU role, no extended
 * negotiation, no user identity (ignored when proposed), asynchronous operations window 1.
 */
import * as fs from 'fs';
import * as net from 'net';
import { ServerContext } from './context';
import { ingestStagedFile, part10Header, FailureReason, IngestResult, countIngest } from './ingest';
import { log } from './log';

export interface DimseConfig {
  /** TCP port; undefined: no DIMSE listener */
  port?: number;
  /** our AE title (answered in A-ASSOCIATE-AC; called AE titles are not checked, as Orthanc by default) */
  aeTitle: string;
  /** calling AE titles allowed to associate; empty: any */
  allowedAeTitles: string[];
  /** an association with no PDU for this long is aborted, milliseconds */
  idleTimeoutMs: number;
}

const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1417.1';
const IMPLEMENTATION_VERSION = 'DICOMWEBRENDER01';
const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
const VERIFICATION = '1.2.840.10008.1.1';
/** Largest PDU we accept, announced in A-ASSOCIATE-AC (PS3.8 D.1). */
const MAX_PDU_RECEIVE = 262144;
/** Bound for an association request PDU (a few hundred presentation contexts at most). */
const MAX_ASSOCIATE_RQ = 65536;

/** Transfer syntaxes we store: the native ones, deflate, and the encapsulated ones the parser knows. */
const STORABLE_SYNTAXES = new Set([
  '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99',
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70',
  '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91',
  '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203', '1.2.840.10008.1.2.5',
  '1.2.840.10008.1.2.4.100', '1.2.840.10008.1.2.4.101', '1.2.840.10008.1.2.4.102', '1.2.840.10008.1.2.4.103',
  '1.2.840.10008.1.2.4.104', '1.2.840.10008.1.2.4.105', '1.2.840.10008.1.2.4.106', '1.2.840.10008.1.2.4.107',
  '1.2.840.10008.1.2.4.108',
]);

/**
 * Storage SOP Classes (PS3.4 B.5: all under 1.2.840.10008.5.1.4.1.1) and private ones (outside the DICOM
 * root, e.g. vendors' raw data) are accepted; other standard services are refused per context.
 */
function isStorageClass(uid: string): boolean {
  return uid.startsWith('1.2.840.10008.5.1.4.1.1.') || !uid.startsWith('1.2.840.10008.');
}

const PDU = { AssociateRQ: 1, AssociateAC: 2, AssociateRJ: 3, PData: 4, ReleaseRQ: 5, ReleaseRP: 6, Abort: 7 } as const;
const Command = { CStoreRQ: 0x0001, CStoreRSP: 0x8001, CEchoRQ: 0x0030, CEchoRSP: 0x8030 } as const;
const NO_DATASET = 0x0101;

class ProtocolError extends Error {}

// ---- encoding helpers -----------------------------------------------------------------------------------

const aeField = (s: string) => Buffer.from(s.padEnd(16, ' ').slice(0, 16), 'latin1');
const uidBytes = (s: string) => Buffer.from(s, 'latin1');
function item(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h[0] = type; h.writeUInt16BE(body.length, 2);
  return Buffer.concat([h, body]);
}
function pdu(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(6);
  h[0] = type; h.writeUInt32BE(body.length, 2);
  return Buffer.concat([h, body]);
}

/** A command set in Implicit VR Little Endian (PS3.7 E.1), group length first. */
function encodeCommand(elements: Array<[number, 'UI' | 'US' | 'UL' | 'LO', string | number]>): Buffer {
  const parts: Buffer[] = [];
  for (const [el, vr, value] of elements.sort((a, b) => a[0] - b[0])) {
    let v: Buffer;
    if (vr === 'US') { v = Buffer.alloc(2); v.writeUInt16LE(value as number); }
    else if (vr === 'UL') { v = Buffer.alloc(4); v.writeUInt32LE(value as number); }
    else {
      v = Buffer.from(String(value), 'latin1');
      if (v.length % 2) v = Buffer.concat([v, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
    }
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0x0000, 0); h.writeUInt16LE(el, 2); h.writeUInt32LE(v.length, 4);
    parts.push(h, v);
  }
  const body = Buffer.concat(parts);
  const gl = Buffer.alloc(12);
  gl.writeUInt16LE(0, 0); gl.writeUInt16LE(0, 2); gl.writeUInt32LE(4, 4); gl.writeUInt32LE(body.length, 8);
  return Buffer.concat([gl, body]);
}

/** Reads a command set: element number -> raw value (group 0000 only, Implicit VR Little Endian). */
function decodeCommand(b: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let p = 0;
  while (p + 8 <= b.length) {
    const group = b.readUInt16LE(p), el = b.readUInt16LE(p + 2), len = b.readUInt32LE(p + 4);
    if (group !== 0 || p + 8 + len > b.length) throw new ProtocolError('malformed command set');
    out.set(el, b.subarray(p + 8, p + 8 + len));
    p += 8 + len;
  }
  return out;
}
const cmdString = (m: Map<number, Buffer>, el: number) => m.get(el)?.toString('latin1').replace(/[\0 ]+$/, '') ?? '';
const cmdUS = (m: Map<number, Buffer>, el: number) => { const v = m.get(el); return v && v.length >= 2 ? v.readUInt16LE(0) : undefined; };

// ---- association ----------------------------------------------------------------------------------------

interface Context { id: number; abstractSyntax: string; transferSyntax?: string; result: number }
interface AssociateRequest { called: string; calling: string; contexts: Context[]; peerMaxPdu: number }

function parseAssociateRQ(body: Buffer): AssociateRequest {
  if (body.length < 68) throw new ProtocolError('short A-ASSOCIATE-RQ');
  const called = body.toString('latin1', 4, 20).trim();
  const calling = body.toString('latin1', 20, 36).trim();
  const contexts: Context[] = [];
  let peerMaxPdu = 0;
  let p = 68;
  let sawAppContext = false;
  while (p + 4 <= body.length) {
    const type = body[p], len = body.readUInt16BE(p + 2);
    const v = body.subarray(p + 4, p + 4 + len);
    if (v.length !== len) throw new ProtocolError('truncated item in A-ASSOCIATE-RQ');
    if (type === 0x10) sawAppContext = true;
    else if (type === 0x20) {
      if (len < 4) throw new ProtocolError('short presentation context item');
      const id = v[0];
      let abstractSyntax = '';
      const syntaxes: string[] = [];
      let q = 4;
      while (q + 4 <= v.length) {
        const st = v[q], sl = v.readUInt16BE(q + 2);
        const s = v.toString('latin1', q + 4, q + 4 + sl).replace(/[\0 ]+$/, '');
        if (st === 0x30) abstractSyntax = s; else if (st === 0x40) syntaxes.push(s);
        q += 4 + sl;
      }
      // PS3.8 9.3.3.2 result: 0 acceptance, 3 abstract syntax not supported, 4 transfer syntaxes not supported
      const ctx: Context = { id, abstractSyntax, result: 3 };
      if (abstractSyntax === VERIFICATION || isStorageClass(abstractSyntax)) {
        const ts = abstractSyntax === VERIFICATION
          ? syntaxes.find((s) => s === '1.2.840.10008.1.2' || s === '1.2.840.10008.1.2.1')
          : syntaxes.find((s) => STORABLE_SYNTAXES.has(s));
        if (ts) { ctx.transferSyntax = ts; ctx.result = 0; } else ctx.result = 4;
      }
      contexts.push(ctx);
    } else if (type === 0x50) {
      let q = 0;
      while (q + 4 <= v.length) {
        const st = v[q], sl = v.readUInt16BE(q + 2);
        if (st === 0x51 && sl === 4) peerMaxPdu = v.readUInt32BE(q + 4);
        q += 4 + sl;
      }
    }
    p += 4 + len;
  }
  if (!sawAppContext) throw new ProtocolError('no application context in A-ASSOCIATE-RQ');
  return { called, calling, contexts, peerMaxPdu };
}

function associateAC(rq: AssociateRequest, ourAe: string): Buffer {
  const items: Buffer[] = [item(0x10, uidBytes(APPLICATION_CONTEXT))];
  for (const c of rq.contexts) {
    const ts = item(0x40, uidBytes(c.transferSyntax ?? '1.2.840.10008.1.2'));
    items.push(item(0x21, Buffer.concat([Buffer.from([c.id, 0, c.result, 0]), ts])));
  }
  const maxLen = Buffer.alloc(4); maxLen.writeUInt32BE(MAX_PDU_RECEIVE);
  items.push(item(0x50, Buffer.concat([item(0x51, maxLen), item(0x52, uidBytes(IMPLEMENTATION_CLASS_UID)), item(0x55, uidBytes(IMPLEMENTATION_VERSION))])));
  const head = Buffer.alloc(68);
  head.writeUInt16BE(1, 0);
  aeField(ourAe || rq.called).copy(head, 4);
  aeField(rq.calling).copy(head, 20);
  return pdu(PDU.AssociateAC, Buffer.concat([head, ...items]));
}

/** A-ASSOCIATE-RJ: result 1 (permanent), source and reason (PS3.8 9.3.4). */
const associateRJ = (source: number, reason: number) => pdu(PDU.AssociateRJ, Buffer.from([0, 1, source, reason]));
/** A-ABORT from the service provider (source 2) with a reason (PS3.8 9.3.8). */
const abortPdu = (source: number, reason: number) => pdu(PDU.Abort, Buffer.from([0, 0, source, reason]));

// ---- one association ------------------------------------------------------------------------------------

interface Incoming {
  contextId: number;
  command: Buffer[];
  commandDone?: Map<number, Buffer>;
  /** staging file the dataset streams to, with the File Meta header already written */
  staged?: string;
  out?: fs.WriteStream;
  bytes: number;
  failed?: { status: number; comment: string };
}

class Association {
  private buf: Buffer[] = [];
  private buffered = 0;
  private state: 'awaiting-rq' | 'established' | 'released' = 'awaiting-rq';
  private contexts = new Map<number, Context>();
  private peerMaxPdu = 16384;
  private calling = '';
  private incoming?: Incoming;
  /** messages are handled one at a time, in order (asynchronous operations window 1) */
  private chain: Promise<void> = Promise.resolve();
  private idle?: NodeJS.Timeout;

  constructor(private socket: net.Socket, private ctx: ServerContext, private cfg: DimseConfig, private stats: DimseStats) {
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => { log.debug({ dimse: true, err: e.message }, 'DIMSE socket error'); this.close(); });
    socket.on('close', () => this.close());
    this.touch();
  }

  private touch() {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => { this.send(abortPdu(2, 0)); this.socket.end(); }, this.cfg.idleTimeoutMs);
    this.idle.unref();
  }

  private close() {
    clearTimeout(this.idle);
    const inc = this.incoming;
    this.incoming = undefined;
    if (inc?.out) { inc.out.destroy(); }
    if (inc?.staged) void this.ctx.blobs.discard(inc.staged);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private send(b: Buffer) { if (!this.socket.destroyed) this.socket.write(b); }

  private abort(reason: string) {
    log.warn({ dimse: true, calling: this.calling, reason }, 'DIMSE association aborted');
    this.send(abortPdu(2, 0));
    this.socket.end();
    this.close();
  }

  private onData(d: Buffer) {
    this.touch();
    this.buf.push(d);
    this.buffered += d.length;
    try {
      while (this.buffered >= 6) {
        const head = this.buf.length === 1 ? this.buf[0] : Buffer.concat(this.buf);
        this.buf = [head];
        const type = head[0];
        const len = head.readUInt32BE(2);
        const limit = type === PDU.AssociateRQ ? MAX_ASSOCIATE_RQ : MAX_PDU_RECEIVE + 6;
        if (len > limit) throw new ProtocolError(`PDU of ${len} bytes is over the ${limit} announced`);
        if (head.length < 6 + len) return;
        const body = head.subarray(6, 6 + len);
        const rest = head.subarray(6 + len);
        this.buf = rest.length ? [rest] : [];
        this.buffered = rest.length;
        this.onPdu(type, body);
        if (this.socket.destroyed) return;
      }
    } catch (e) {
      this.abort(e instanceof ProtocolError ? e.message : `internal error: ${(e as Error)?.message ?? e}`);
    }
  }

  private onPdu(type: number, body: Buffer) {
    if (this.state === 'awaiting-rq') {
      if (type !== PDU.AssociateRQ) throw new ProtocolError('expected A-ASSOCIATE-RQ');
      const rq = parseAssociateRQ(body);
      this.calling = rq.calling;
      // PS3.8 9.3.2: protocol version bit 0; anything else is refused (source ACSE provider, reason 2).
      if ((body.readUInt16BE(0) & 1) === 0) { this.send(associateRJ(2, 2)); this.socket.end(); return; }
      if (this.cfg.allowedAeTitles.length && !this.cfg.allowedAeTitles.includes(rq.calling)) {
        log.warn({ dimse: true, calling: rq.calling }, 'DIMSE association refused: calling AE title not allowed');
        this.stats.rejected++;
        this.send(associateRJ(1, 3)); // service user: calling AE title not recognized
        this.socket.end();
        return;
      }
      if (rq.peerMaxPdu) this.peerMaxPdu = Math.max(1024, rq.peerMaxPdu);
      for (const c of rq.contexts) this.contexts.set(c.id, c);
      this.state = 'established';
      this.stats.associations++;
      this.send(associateAC(rq, this.cfg.aeTitle));
      return;
    }
    switch (type) {
      case PDU.PData: this.onPData(body); return;
      case PDU.ReleaseRQ:
        // Answered after the messages already received are handled (their responses go first).
        this.chain = this.chain.then(() => { this.state = 'released'; this.send(pdu(PDU.ReleaseRP, Buffer.alloc(4))); this.socket.end(); });
        return;
      case PDU.Abort: this.close(); return;
      default: throw new ProtocolError(`unexpected PDU type ${type}`);
    }
  }

  private onPData(body: Buffer) {
    let p = 0;
    while (p < body.length) {
      if (p + 6 > body.length) throw new ProtocolError('truncated PDV item');
      const len = body.readUInt32BE(p);
      if (len < 2 || p + 4 + len > body.length) throw new ProtocolError('PDV item length out of range');
      const contextId = body[p + 4], control = body[p + 5];
      const data = body.subarray(p + 6, p + 4 + len);
      p += 4 + len;
      const ctx = this.contexts.get(contextId);
      if (!ctx || ctx.result !== 0) throw new ProtocolError(`PDV on presentation context ${contextId}, which was not accepted`);
      const isCommand = (control & 1) === 1, last = (control & 2) === 2;
      if (isCommand) {
        if (this.incoming?.commandDone) throw new ProtocolError('a command fragment arrived inside a data set');
        this.incoming ??= { contextId, command: [], bytes: 0 };
        this.incoming.command.push(Buffer.from(data));
        if (last) this.onCommand(this.incoming);
      } else {
        const inc = this.incoming;
        if (!inc?.commandDone || inc.contextId !== contextId) throw new ProtocolError('a data set fragment arrived without its command');
        this.onDataFragment(inc, data, last);
      }
    }
  }

  private onCommand(inc: Incoming) {
    const cmd = decodeCommand(Buffer.concat(inc.command));
    inc.commandDone = cmd;
    const field = cmdUS(cmd, 0x0100);
    const hasData = cmdUS(cmd, 0x0800) !== NO_DATASET;
    if (field === Command.CEchoRQ) {
      this.incoming = undefined;
      const msgId = cmdUS(cmd, 0x0110) ?? 0;
      this.chain = this.chain.then(() => this.respond(inc.contextId, [
        [0x0002, 'UI', VERIFICATION], [0x0100, 'US', Command.CEchoRSP], [0x0120, 'US', msgId],
        [0x0800, 'US', NO_DATASET], [0x0900, 'US', 0],
      ]));
      return;
    }
    if (field !== Command.CStoreRQ || !hasData) throw new ProtocolError(`DIMSE command 0x${(field ?? 0).toString(16)} is not supported here`);
    const ctx = this.contexts.get(inc.contextId)!;
    const sopClass = cmdString(cmd, 0x0002), sopInstance = cmdString(cmd, 0x1000);
    inc.staged = this.ctx.blobs.stagingPath();
    inc.out = fs.createWriteStream(inc.staged);
    inc.out.on('error', (e) => { inc.failed ??= { status: FailureReason.OutOfResources, comment: `cannot stage the data set: ${e.message}` }; });
    inc.out.write(part10Header({ sopClassUID: sopClass, sopInstanceUID: sopInstance, transferSyntaxUID: ctx.transferSyntax!, sourceAeTitle: this.calling }));
  }

  private onDataFragment(inc: Incoming, data: Buffer, last: boolean) {
    inc.bytes += data.length;
    if (inc.bytes > this.ctx.config.limits.maxPartBytes) {
      inc.failed ??= { status: FailureReason.OutOfResources, comment: `data set larger than the ${this.ctx.config.limits.maxPartBytes}-byte limit` };
    }
    if (!inc.failed && inc.out && !inc.out.write(Buffer.from(data)) && !this.socket.isPaused()) {
      // Back-pressure: stop reading the socket until the staging file catches up (or is closed: a stream that
      // ends emits no 'drain').
      this.socket.pause();
      const resume = () => { inc.out!.off('drain', resume).off('close', resume); this.socket.resume(); };
      inc.out.on('drain', resume).on('close', resume);
    }
    if (!last) return;
    this.incoming = undefined;
    const job = this.finishStore(inc);
    this.chain = this.chain.then(() => job);
  }

  private async finishStore(inc: Incoming): Promise<void> {
    const cmd = inc.commandDone!;
    const msgId = cmdUS(cmd, 0x0110) ?? 0;
    const sopClass = cmdString(cmd, 0x0002), sopInstance = cmdString(cmd, 0x1000);
    await new Promise<void>((resolve) => { if (!inc.out || inc.out.closed) resolve(); else inc.out.end(() => resolve()); inc.out?.once('error', () => resolve()); });
    let status: number;
    let comment: string | undefined;
    if (inc.failed) {
      await this.ctx.blobs.discard(inc.staged!);
      ({ status, comment } = inc.failed);
    } else {
      let r: IngestResult;
      try {
        r = await ingestStagedFile(this.ctx, inc.staged!);
      } catch (e) {
        log.error({ dimse: true, err: (e as Error)?.message }, 'C-STORE ingest failed');
        r = { ok: false, failureReason: FailureReason.ProcessingFailure, reason: 'the instance could not be stored' };
      }
      if (r.ok && r.sopInstanceUID !== sopInstance) {
        // PS3.7 9.1.1.1: the Affected SOP Instance UID is the data set's; a mismatch is accepted by most SCPs
        // with a warning, which is what B000 (coercion) is closest to here.
        status = 0xb000; comment = `the data set's SOP Instance UID ${r.sopInstanceUID} differs from the command's`;
      } else if (r.ok) {
        status = r.warning ?? 0;
        comment = r.warningText;
      } else {
        status = r.failureReason; comment = r.reason;
      }
      countIngest('dimse', [r]);
      this.stats.stored += r.ok ? 1 : 0;
      this.stats.failed += r.ok ? 0 : 1;
      if (!r.ok) log.warn({ dimse: true, calling: this.calling, sopInstanceUID: sopInstance, status: `0x${status.toString(16)}`, reason: comment }, 'C-STORE failed');
    }
    const elements: Array<[number, 'UI' | 'US' | 'UL' | 'LO', string | number]> = [
      [0x0002, 'UI', sopClass], [0x0100, 'US', Command.CStoreRSP], [0x0120, 'US', msgId],
      [0x0800, 'US', NO_DATASET], [0x0900, 'US', status], [0x1000, 'UI', sopInstance],
    ];
    if (comment && status !== 0) elements.push([0x0902, 'LO', comment.slice(0, 64)]);
    this.respond(inc.contextId, elements);
  }

  /** Sends a command (no data set) as one or more PDVs within the peer's maximum PDU length. */
  private respond(contextId: number, elements: Array<[number, 'UI' | 'US' | 'UL' | 'LO', string | number]>) {
    const cmd = encodeCommand(elements);
    const room = Math.max(64, this.peerMaxPdu - 6);
    for (let off = 0; off < cmd.length; off += room) {
      const chunk = cmd.subarray(off, off + room);
      const last = off + room >= cmd.length;
      const pdv = Buffer.alloc(6);
      pdv.writeUInt32BE(chunk.length + 2, 0); pdv[4] = contextId; pdv[5] = last ? 3 : 1;
      this.send(pdu(PDU.PData, Buffer.concat([pdv, chunk])));
    }
  }
}

export interface DimseStats { associations: number; rejected: number; stored: number; failed: number }

export interface DimseListener { port: number; stats: DimseStats; close(): Promise<void> }

/** Starts the DIMSE listener on `host`:`cfg.port` (0: any free port). */
export function startDimse(ctx: ServerContext, cfg: DimseConfig, host: string): Promise<DimseListener> {
  const stats: DimseStats = { associations: 0, rejected: 0, stored: 0, failed: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    new Association(socket, ctx, cfg, stats);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port ?? 0, host, () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port, stats,
        close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
      });
    });
  });
}
