/**
 * Loading of the WebAssembly codecs. Each is instantiated once per thread (module state is per isolate, so every
 * worker thread gets its own instances) and then called synchronously by decodeFrame.
 *
 * Emscripten modules are made process-safe: console output is swallowed (OpenJPEG prints [INFO] lines), `quit`
 * throws instead of touching process.exitCode, and an abort (out of memory, assertion) marks the module dead and
 * reloads it in the background, so one hostile frame costs one CodecError, never the process or later requests.
 */
import { readFile } from 'node:fs/promises';
import { CodecError } from './errors';

/* eslint-disable @typescript-eslint/no-explicit-any -- emscripten/embind objects are untyped by nature */

export interface EmbindDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  readHeader?(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  delete(): void;
  [method: string]: any;
}

type EmscriptenFactory = (moduleArg: Record<string, unknown>) => Promise<any>;

export type EmscriptenCodec = 'libjpeg-turbo-8bit' | 'charls' | 'openjpeg' | 'openjph';

/** Which file of each package to load: only the decoders, except OpenJPH which ships encoder and decoder together. */
const EMSCRIPTEN: Readonly<Record<EmscriptenCodec, { js: string; wasm: string; decoderClass: string }>> = {
  'libjpeg-turbo-8bit': {
    js: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
    wasm: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasm',
    decoderClass: 'JPEGDecoder',
  },
  charls: {
    js: '@cornerstonejs/codec-charls/decodewasmjs',
    wasm: '@cornerstonejs/codec-charls/decodewasm',
    decoderClass: 'JpegLSDecoder',
  },
  openjpeg: {
    js: '@cornerstonejs/codec-openjpeg/decodewasmjs',
    wasm: '@cornerstonejs/codec-openjpeg/decodewasm',
    decoderClass: 'J2KDecoder',
  },
  openjph: {
    js: '@cornerstonejs/codec-openjph/wasmjs',
    wasm: '@cornerstonejs/codec-openjph/wasm',
    decoderClass: 'HTJ2KDecoder',
  },
};

interface Loaded {
  module: any | undefined;
  dead: boolean;
  reloading: Promise<void> | undefined;
}

const loaded: Record<EmscriptenCodec, Loaded> = {
  'libjpeg-turbo-8bit': { module: undefined, dead: false, reloading: undefined },
  charls: { module: undefined, dead: false, reloading: undefined },
  openjpeg: { module: undefined, dead: false, reloading: undefined },
  openjph: { module: undefined, dead: false, reloading: undefined },
};

/** dcmjs-codecs: a plain (non-emscripten) wasm whose JPEG decoder includes the 12-bit libjpeg build. */
let dcmjsCodecs: any | undefined;

const wasmBytes = new Map<string, Promise<Buffer>>();
function readWasm(specifier: string): Promise<Buffer> {
  let bytes = wasmBytes.get(specifier);
  if (!bytes) {
    bytes = readFile(require.resolve(specifier));
    wasmBytes.set(specifier, bytes);
  }
  return bytes;
}

/**
 * The compiled module of each codec, kept: a new instance (trimCodecHeaps, reload) then reuses the compiled
 * code, optimised tiers included, instead of compiling the bytes again and running its first frames in baseline
 * code (a reduced DX decode right after a trim took ~50 ms instead of ~17).
 */
const WA = (globalThis as any).WebAssembly; // not in this project's TypeScript libs
const compiled = new Map<string, Promise<unknown>>();
function compiledWasm(specifier: string): Promise<unknown> {
  let m = compiled.get(specifier);
  if (!m) {
    m = readWasm(specifier).then((bytes) => WA.compile(bytes) as Promise<unknown>);
    m.catch(() => compiled.delete(specifier));
    compiled.set(specifier, m);
  }
  return m;
}

async function instantiate(name: EmscriptenCodec): Promise<void> {
  const spec = EMSCRIPTEN[name];
  const factory = require(spec.js) as EmscriptenFactory;
  const entry = loaded[name];
  let failed: (e: unknown) => void = () => undefined;
  const failure = new Promise<never>((_resolve, reject) => { failed = reject; });
  const wasm = await compiledWasm(spec.wasm);
  const module = await Promise.race([failure, factory({
    // emscripten's hook: instantiate the kept compiled module; the factory resolves once it has the instance
    instantiateWasm: (imports: unknown, receive: (instance: unknown, module: unknown) => void) => {
      (WA.instantiate(wasm, imports) as Promise<unknown>).then((instance) => receive(instance, wasm), failed);
      return {};
    },
    print: () => undefined,
    printErr: () => undefined,
    quit: (_status: number, toThrow: unknown) => {
      throw toThrow;
    },
    onAbort: () => {
      entry.dead = true;
    },
  })]);
  if (typeof module[spec.decoderClass] !== 'function') {
    throw new Error(`${spec.js} has no ${spec.decoderClass}`);
  }
  entry.module = module;
  entry.dead = false;
}

async function loadDcmjsCodecs(): Promise<void> {
  const lib = require('dcmjs-codecs');
  if (!lib.NativeCodecs.isInitialized()) {
    const wasmPath = require.resolve('dcmjs-codecs/build/dcmjs-native-codecs.wasm');
    await lib.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: wasmPath, logCodecsInfo: false, logCodecsTrace: false });
  }
  dcmjsCodecs = lib;
}

/** Heap size beyond which a failed decode replaces the emscripten instance (see withDecoder). */
const EMSCRIPTEN_HEAP_LIMIT = 512 * 1024 * 1024;

/** What initCodecs loads: one emscripten codec, or dcmjs-codecs (12-bit JPEG decoding, and JPEG encoding). */
export type CodecName = EmscriptenCodec | 'dcmjs-codecs';
export const ALL_CODECS: readonly CodecName[] = [...(Object.keys(EMSCRIPTEN) as EmscriptenCodec[]), 'dcmjs-codecs'];

const loading = new Map<CodecName, Promise<void>>();

function load(name: CodecName): Promise<void> {
  if (name === 'dcmjs-codecs' ? dcmjsCodecs : loaded[name].module) return Promise.resolve();
  let p = loading.get(name);
  if (!p) {
    p = (name === 'dcmjs-codecs' ? loadDcmjsCodecs() : instantiate(name)).finally(() => loading.delete(name));
    loading.set(name, p);
  }
  return p;
}

/**
 * Load the named codecs (default: all) once per thread; each wasm heap costs memory (10-15 MB at rest), so a
 * thread loads only what its frames need. Idempotent and safe to call concurrently; a failed load is not cached,
 * so a later call retries.
 */
export function initCodecs(names: readonly CodecName[] = ALL_CODECS): Promise<void> {
  return Promise.all(names.map(load)).then(() => undefined);
}

/**
 * Heap size an emscripten instance may keep after a decode. Wasm memory only grows: one 1760x1760 JPEG 2000
 * frame leaves OpenJPEG's heap at ~80 MB, in every thread that ever decoded one. Past this size the instance is
 * replaced (trimCodecHeaps) and the old heap is returned to the system when it is collected.
 */
const HEAP_RETAIN = 24 * 1024 * 1024;

/**
 * Replace every loaded emscripten instance whose heap is past HEAP_RETAIN by a fresh one (about 20 ms each, the
 * compiled bytes being cached); the old instance serves until its successor is ready. Resolves true when one was
 * replaced: the caller may then collect garbage to give the memory back at once.
 */
export async function trimCodecHeaps(): Promise<boolean> {
  const bloated = (Object.keys(EMSCRIPTEN) as EmscriptenCodec[]).filter((name) => {
    const e = loaded[name];
    return e.module && !e.dead && !e.reloading && (e.module.HEAPU8 as Uint8Array).length > HEAP_RETAIN;
  });
  for (const name of bloated) {
    const entry = loaded[name];
    entry.reloading = instantiate(name).catch(() => undefined).finally(() => { entry.reloading = undefined; });
    await entry.reloading;
  }
  return bloated.length > 0;
}

function reload(name: EmscriptenCodec): void {
  const entry = loaded[name];
  if (entry.reloading) return;
  entry.module = undefined;
  entry.reloading = instantiate(name)
    .catch(() => undefined) // the next call that needs it tries again
    .finally(() => {
      entry.reloading = undefined;
    });
}

/**
 * Run `use` with a fresh embind decoder of `name`, always deleting it afterwards (embind objects live on the wasm
 * heap and are not garbage collected). Whatever the codec throws becomes a CodecError.
 */
export function withDecoder<T>(name: EmscriptenCodec, use: (decoder: EmbindDecoder) => T): T {
  const entry = loaded[name];
  if (entry.dead && !entry.reloading) reload(name);
  if (!entry.module || entry.dead) {
    throw new CodecError('NOT_INITIALIZED', `the ${name} codec is not loaded (call initCodecs() first)`);
  }
  let decoder: EmbindDecoder | undefined;
  try {
    decoder = new entry.module[EMSCRIPTEN[name].decoderClass]() as EmbindDecoder;
    return use(decoder);
  } catch (err) {
    if (err instanceof CodecError) throw err;
    // An emscripten abort surfaces as a WebAssembly.RuntimeError; the instance's state is undefined from now on.
    // A C++ exception leaves its object (and whatever the codec had not freed) in the heap; once the heap is large,
    // a fresh instance is cheaper than carrying the leak.
    const heap = entry.module?.HEAPU8 as Uint8Array | undefined;
    const bloated = heap !== undefined && heap.length > EMSCRIPTEN_HEAP_LIMIT;
    if (entry.dead || bloated || (err instanceof Error && err.name === 'RuntimeError')) {
      entry.dead = true;
      reload(name);
    }
    throw new CodecError('CORRUPT_BITSTREAM', `${name} could not decode the frame`);
  } finally {
    if (decoder && !entry.dead) {
      try {
        decoder.delete();
      } catch {
        // deleting after a failed decode must not mask the original error
      }
    }
  }
}

/**
 * dcmjs-codecs reports codec errors by throwing from inside the wasm call, which skips the C++ cleanup: each failed
 * frame leaks its buffers in that instance's heap. When the heap has grown past this bound after a failure, the
 * instance is replaced (in the background) by a fresh one.
 */
const DCMJS_CODECS_HEAP_LIMIT = 256 * 1024 * 1024;
let dcmjsReloading: Promise<void> | undefined;

export function dcmjsCodecsFailed(): void {
  const memory = dcmjsCodecs?.NativeCodecs?.wasmApi?.wasmMemory as { buffer: ArrayBuffer } | undefined;
  if (!memory || memory.buffer.byteLength < DCMJS_CODECS_HEAP_LIMIT || dcmjsReloading) return;
  const lib = dcmjsCodecs;
  dcmjsCodecs = undefined;
  lib.NativeCodecs.release();
  dcmjsReloading = loadDcmjsCodecs()
    .catch(() => undefined)
    .finally(() => {
      dcmjsReloading = undefined;
    });
}

export function dcmjsCodecsLibrary(): any {
  if (!dcmjsCodecs) throw new CodecError('NOT_INITIALIZED', 'the 12-bit JPEG codec is not loaded (call initCodecs() first)');
  return dcmjsCodecs;
}

/** For tests and benchmarks: the loaded OpenJPH module (it also holds HTJ2KEncoder). */
export function openjphModule(): any {
  if (!loaded.openjph.module) throw new CodecError('NOT_INITIALIZED', 'openjph is not loaded');
  return loaded.openjph.module;
}
