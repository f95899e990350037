// The worker thread that runs user JavaScript payload codecs (codecs.ts).
// Each call runs in a fresh node:vm context with no host objects: no require,
// no process, no timers, no network, no eval/new Function (code generation
// from strings is off), no WebAssembly, no SharedArrayBuffer/Atomics, and
// ArrayBuffers/typed arrays capped in size (their memory lives outside the V8
// heap that resourceLimits bounds). Input crosses into the context as a JSON
// string (a primitive: it carries no host prototype) and the result leaves it
// as a JSON string made inside the context, so no object of either realm
// reaches the other. The vm timeout bounds the run (microtasks included); the
// main thread also enforces a deadline and terminates this worker if it does
// not answer, and V8 ends it when its heap limit is reached.
//
// Codec form (The Things Stack, "JavaScript payload formatters"):
//   function decodeUplink(input) { return { data, warnings, errors } }
// with input = { bytes: number[], fPort: number, recvTime: Date }; the older
// form `function Decoder(bytes, port) { return data }` is accepted too.

import vm from 'node:vm'

/** A request from the main thread. */
interface DecodeRequest {
  readonly id: number
  readonly key: string
  readonly source: string
  /** JSON text of { bytes, fPort, recvTime }. */
  readonly input: string
  readonly timeoutMs: number
  readonly maxOutputBytes: number
  readonly maxBufferBytes: number
}

const MAX_SCRIPTS = 128
const scripts = new Map<string, vm.Script>()

// Run inside the context before the codec: remove what a codec has no use for
// and which escapes the heap limit or the single-threaded model.
const HARDEN = `(function (limit) {
  'use strict';
  var g = globalThis;
  delete g.SharedArrayBuffer; delete g.Atomics; delete g.WebAssembly;
  var names = ['ArrayBuffer', 'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
    'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'Float16Array'];
  var check = function (args) {
    for (var i = 0; i < 3 && i < args.length; i++) {
      var a = args[i];
      if (typeof a === 'number' && a > limit) throw new RangeError('buffer larger than the codec limit');
      if (a !== null && typeof a === 'object' && typeof a.maxByteLength === 'number' && a.maxByteLength > limit) throw new RangeError('buffer larger than the codec limit');
    }
  };
  var wrap = function (C) {
    return new Proxy(C, { construct: function (t, args, nt) { check(args); return Reflect.construct(t, args, nt); } });
  };
  for (var n = 0; n < names.length; n++) {
    if (typeof g[names[n]] === 'function') g[names[n]] = wrap(g[names[n]]);
  }
})`

const RUN = `(function () {
  var i = JSON.parse(__fieldproof_input);
  var out;
  if (typeof decodeUplink === 'function') {
    out = decodeUplink({ bytes: i.bytes, fPort: i.fPort, recvTime: new Date(i.recvTime) });
  } else if (typeof Decoder === 'function') {
    out = { data: Decoder(i.bytes, i.fPort) };
  } else {
    throw new Error('the codec defines neither decodeUplink(input) nor Decoder(bytes, port)');
  }
  return JSON.stringify(out === undefined ? null : out);
})()`

function scriptFor(key: string, source: string): vm.Script {
  let s = scripts.get(key)
  if (s) return s
  s = new vm.Script(`${source}\n;${RUN}`, { filename: 'codec.js' })
  if (scripts.size >= MAX_SCRIPTS) scripts.delete(scripts.keys().next().value as string)
  scripts.set(key, s)
  return s
}

function message(e: unknown): string {
  // Errors thrown inside the context are objects of that realm: read them as plain values.
  try {
    if (e !== null && typeof e === 'object') {
      const name = (e as { name?: unknown }).name
      const msg = (e as { message?: unknown }).message
      const code = (e as { code?: unknown }).code
      return `${typeof name === 'string' ? name : 'Error'}${typeof code === 'string' ? ` [${code}]` : ''}: ${typeof msg === 'string' ? msg : ''}`.slice(0, 300)
    }
    return String(e).slice(0, 300)
  } catch {
    return 'unprintable error'
  }
}

function handle(m: DecodeRequest): { id: number; ok: true; json: string } | { id: number; ok: false; kind: 'timeout' | 'error' | 'output'; reason: string } {
  let script: vm.Script
  try {
    script = scriptFor(m.key, m.source)
  } catch (e) {
    return { id: m.id, ok: false, kind: 'error', reason: `codec does not compile: ${message(e)}` }
  }
  const sandbox = Object.create(null) as Record<string, unknown>
  sandbox['__fieldproof_input'] = m.input
  const context = vm.createContext(sandbox, {
    name: 'fieldproof-codec',
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate',
  })
  try {
    const harden = vm.runInContext(HARDEN, context, { timeout: m.timeoutMs }) as (limit: number) => void
    harden(m.maxBufferBytes)
    const out: unknown = script.runInContext(context, { timeout: m.timeoutMs, breakOnSigint: false })
    if (typeof out !== 'string') return { id: m.id, ok: false, kind: 'output', reason: 'codec result is not serializable' }
    if (out.length > m.maxOutputBytes) return { id: m.id, ok: false, kind: 'output', reason: `codec result of ${out.length} characters exceeds ${m.maxOutputBytes}` }
    return { id: m.id, ok: true, json: out }
  } catch (e) {
    const code = e !== null && typeof e === 'object' ? (e as { code?: unknown }).code : undefined
    if (code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return { id: m.id, ok: false, kind: 'timeout', reason: `codec ran longer than ${m.timeoutMs} ms` }
    return { id: m.id, ok: false, kind: 'error', reason: message(e) }
  }
}

// A codec's stray promise (e.g. a dynamic import) must not end the worker.
process.on('unhandledRejection', () => undefined)

process.on('message', (m: DecodeRequest) => {
  process.send?.(handle(m))
})
// The gateway went away: so does this process.
process.on('disconnect', () => process.exit(0))
// Tell the gateway the handler is installed: its per-call deadline starts from here.
process.send?.({ ready: true })
