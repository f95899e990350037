// Keccak-256 (the original Keccak padding, as Ethereum uses it) in a small
// WebAssembly module that this file writes byte by byte at load time: no
// binary blob, no native addon, no build step.
//
// Why its own module: the gateway hashes ~5 times per reading (the reading,
// its two-step OpenZeppelin leaf, its share of the Merkle tree). A general
// hashing library pays ~0.17 µs of JavaScript per call around a ~0.27 µs
// permutation; here a whole leaf, or a whole tree, is one call.
//
// Memory layout (bytes):
//     0 … 199   the state, 25 little-endian 64-bit lanes
//   200 … 391   the 24 round constants
//   400 … 535   the last block, padded
//   544 … 607   scratch: the abi.encode(seq, hash) word pair of a leaf, or a node pair
//   640 … 671   output
//  1024 …       input (IN_CAPACITY bytes), then Merkle nodes from NODES_AT
//
// The permutation keeps the 25 lanes in locals for all 24 rounds (theta,
// rho and pi fused, chi, iota), as the reference "in-place" implementations
// do. The tests compare every entry point with @noble/hashes on random
// inputs of every length around the block size.

const RATE = 136
const STATE = 0
const RC_AT = 200
const PAD = 400
const SCRATCH = 544
const OUT = 640
const IN = 1024
/** Input bytes hashed per call into the module; longer inputs are absorbed in chunks of whole blocks. */
const IN_CAPACITY = RATE * 400
const NODES_AT = 65_536

// --- the module, written out -------------------------------------------------

/** Round constants of Keccak-f[1600] from the LFSR of the reference (FIPS 202, Algorithm 5). */
function roundConstants(): bigint[] {
  let r = 1
  const bit = (): number => {
    const out = r & 1
    r = r & 0x80 ? ((r << 1) ^ 0x71) & 0xff : (r << 1) & 0xff
    return out
  }
  const rc: bigint[] = []
  for (let i = 0; i < 24; i++) {
    let c = 0n
    for (let j = 0; j < 7; j++) if (bit()) c |= 1n << BigInt((1 << j) - 1)
    rc.push(c)
  }
  return rc
}

/** Rotation offsets r[x + 5y] (FIPS 202, Table 2). */
const RHO = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14]

const uleb = (n: number): number[] => {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}
const sleb = (n: number): number[] => {
  const out: number[] = []
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b]
    out.push(b | 0x80)
  }
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()]
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body]
const name = (s: string): number[] => [...uleb(s.length), ...[...s].map((c) => c.charCodeAt(0))]

const I32 = 0x7f
const I64 = 0x7e
const op = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, call: 0x10,
  get: 0x20, set: 0x21, tee: 0x22,
  i32load8u: 0x2d, i64load: 0x29, i64store: 0x37, i32store8: 0x3a,
  i32const: 0x41, i64const: 0x42,
  i32eqz: 0x45, i32ne: 0x47, i32ltS: 0x48, i32gtU: 0x4b, i32geS: 0x4e,
  i32add: 0x6a, i32sub: 0x6b, i32mul: 0x6c, i32divU: 0x6e, i32or: 0x72,
  i64and: 0x83, i64xor: 0x85, i64rotl: 0x89,
} as const
const mem = (o: number): number[] => [0, ...uleb(o)] // align 1 (a hint only), offset o
const i32c = (n: number): number[] => [op.i32const, ...sleb(n)]
const fill = (dst: number[], value: number[], len: number[]): number[] => [...dst, ...value, ...len, 0xfc, 0x0b, 0x00]
const copy = (dst: number[], src: number[], len: number[]): number[] => [...dst, ...src, ...len, 0xfc, 0x0a, 0x00, 0x00]

/** f1600(): the permutation on the state in memory. */
function permutation(): { locals: number[]; code: number[] } {
  // locals: a0…a24 (0–24), c0…c4 (25–29), d0…d4 (30–34), b0…b24 (35–59), round (60, i32)
  const A = (i: number) => i
  const C = (x: number) => 25 + x
  const D = (x: number) => 30 + x
  const B = (i: number) => 35 + i
  const ROUND = 60
  const c: number[] = []
  for (let i = 0; i < 25; i++) c.push(...i32c(0), op.i64load, ...mem(STATE + 8 * i), op.set, A(i))
  c.push(...i32c(0), op.set, ROUND)
  c.push(op.loop, 0x40)
  // theta: c[x] = a[x] ^ a[x+5] ^ a[x+10] ^ a[x+15] ^ a[x+20]
  for (let x = 0; x < 5; x++) {
    c.push(op.get, A(x))
    for (let y = 1; y < 5; y++) c.push(op.get, A(x + 5 * y), op.i64xor)
    c.push(op.set, C(x))
  }
  // d[x] = c[x-1] ^ rotl(c[x+1], 1)
  for (let x = 0; x < 5; x++) c.push(op.get, C((x + 4) % 5), op.get, C((x + 1) % 5), op.i64const, 1, op.i64rotl, op.i64xor, op.set, D(x))
  // rho and pi: b[y + 5((2x + 3y) mod 5)] = rotl(a[x + 5y] ^ d[x], r[x + 5y])
  for (let y = 0; y < 5; y++) {
    for (let x = 0; x < 5; x++) {
      const i = x + 5 * y
      c.push(op.get, A(i), op.get, D(x), op.i64xor)
      if (RHO[i] !== 0) c.push(op.i64const, ...sleb(RHO[i] as number), op.i64rotl)
      c.push(op.set, B(y + 5 * ((2 * x + 3 * y) % 5)))
    }
  }
  // chi: a[x + 5y] = b[x + 5y] ^ (~b[x+1 + 5y] & b[x+2 + 5y])
  for (let y = 0; y < 5; y++) {
    for (let x = 0; x < 5; x++) {
      c.push(op.get, B(x + 5 * y), op.get, B(((x + 1) % 5) + 5 * y), op.i64const, 0x7f, op.i64xor, op.get, B(((x + 2) % 5) + 5 * y), op.i64and, op.i64xor, op.set, A(x + 5 * y))
    }
  }
  // iota: a[0] ^= RC[round]
  c.push(op.get, A(0), op.get, ROUND, ...i32c(8), op.i32mul, op.i64load, ...mem(RC_AT), op.i64xor, op.set, A(0))
  c.push(op.get, ROUND, ...i32c(1), op.i32add, op.tee, ROUND, ...i32c(24), op.i32ne, op.brIf, 0, op.end)
  for (let i = 0; i < 25; i++) c.push(...i32c(0), op.get, A(i), op.i64store, ...mem(STATE + 8 * i))
  return { locals: [2, 60, I64, 1, I32], code: c }
}

// Function indexes.
const F = { permute: 0, absorb: 1, finish: 2, hash: 3, leaf: 4, tree: 5, reset: 6 }

/** absorb(ptr, blocks): xor each 136-byte block at ptr into the state and permute. */
function absorb(): { locals: number[]; code: number[] } {
  const PTR = 0
  const N = 1
  const c: number[] = [op.block, 0x40, op.loop, 0x40, op.get, N, op.i32eqz, op.brIf, 1]
  for (let k = 0; k < RATE / 8; k++) {
    c.push(...i32c(0), ...i32c(0), op.i64load, ...mem(STATE + 8 * k), op.get, PTR, op.i64load, ...mem(8 * k), op.i64xor, op.i64store, ...mem(STATE + 8 * k))
  }
  c.push(op.call, F.permute)
  c.push(op.get, PTR, ...i32c(RATE), op.i32add, op.set, PTR)
  c.push(op.get, N, ...i32c(1), op.i32sub, op.set, N, op.br, 0, op.end, op.end)
  return { locals: [0], code: c }
}

/** finish(ptr, rem, out): absorb the last rem (< 136) bytes with the Keccak padding (0x01 … 0x80); write the 32-byte digest at out. */
function finish(): { locals: number[]; code: number[] } {
  const PTR = 0
  const REM = 1
  const OUTP = 2
  const c: number[] = [
    ...fill(i32c(PAD), i32c(0), i32c(RATE)),
    ...copy(i32c(PAD), [op.get, PTR], [op.get, REM]),
    op.get, REM, ...i32c(1), op.i32store8, ...mem(PAD),
    ...i32c(0), ...i32c(0), op.i32load8u, ...mem(PAD + RATE - 1), ...i32c(0x80), op.i32or, op.i32store8, ...mem(PAD + RATE - 1),
    ...i32c(PAD), ...i32c(1), op.call, F.absorb,
    ...copy([op.get, OUTP], i32c(STATE), i32c(32)),
  ]
  return { locals: [0], code: c }
}

/** reset(): the all-zero state. */
function reset(): { locals: number[]; code: number[] } {
  return { locals: [0], code: fill(i32c(STATE), i32c(0), i32c(200)) }
}

/** hash(ptr, len, out): keccak256 of len bytes at ptr into out. */
function hash(): { locals: number[]; code: number[] } {
  const PTR = 0
  const LEN = 1
  const OUTP = 2
  const FULL = 3
  const c: number[] = [
    op.call, F.reset,
    op.get, LEN, ...i32c(RATE), op.i32divU, op.set, FULL,
    op.get, PTR, op.get, FULL, op.call, F.absorb,
    op.get, PTR, op.get, FULL, ...i32c(RATE), op.i32mul, op.i32add,
    op.get, LEN, op.get, FULL, ...i32c(RATE), op.i32mul, op.i32sub,
    op.get, OUTP, op.call, F.finish,
  ]
  return { locals: [1, 1, I32], code: c }
}

/**
 * leaf(ptr, len, out): the OpenZeppelin leaf keccak256(keccak256(word ‖ keccak256(bytes))),
 * where the 32-byte word (seq, big-endian, left-padded) is already at SCRATCH.
 */
function leaf(): { locals: number[]; code: number[] } {
  const c: number[] = [
    op.get, 0, op.get, 1, ...i32c(SCRATCH + 32), op.call, F.hash,
    ...i32c(SCRATCH), ...i32c(64), op.get, 2, op.call, F.hash,
    op.get, 2, ...i32c(32), op.get, 2, op.call, F.hash,
  ]
  return { locals: [0], code: c }
}

/**
 * tree(base, first): for i = first … 0, node i = keccak256(min(l, r) ‖ max(l, r))
 * of its children 2i+1 and 2i+2 (32-byte nodes from base), as merkle.ts lays them out.
 */
function tree(): { locals: number[]; code: number[] } {
  const BASE = 0
  const I = 1
  const L = 2
  const R = 3
  const K = 4
  const X = 5
  const Y = 6
  const c: number[] = [
    op.block, 0x40, op.loop, 0x40,
    op.get, I, ...i32c(0), op.i32ltS, op.brIf, 1,
    // l = base + (2i+1)·32, r = l + 32
    op.get, BASE, op.get, I, ...i32c(64), op.i32mul, op.i32add, ...i32c(32), op.i32add, op.tee, L, ...i32c(32), op.i32add, op.set, R,
    // compare bytes; on the first difference, swap when l > r
    ...i32c(0), op.set, K,
    op.block, 0x40, op.loop, 0x40,
    op.get, K, ...i32c(32), op.i32geS, op.brIf, 1,
    op.get, L, op.get, K, op.i32add, op.i32load8u, ...mem(0), op.tee, X,
    op.get, R, op.get, K, op.i32add, op.i32load8u, ...mem(0), op.tee, Y,
    op.i32ne, op.if, 0x40,
    op.get, X, op.get, Y, op.i32gtU, op.if, 0x40,
    op.get, L, op.get, R, op.set, L, op.set, R,
    op.end,
    op.br, 2,
    op.end,
    op.get, K, ...i32c(1), op.i32add, op.set, K, op.br, 0,
    op.end, op.end,
    ...copy(i32c(SCRATCH), [op.get, L], i32c(32)),
    ...copy(i32c(SCRATCH + 32), [op.get, R], i32c(32)),
    ...i32c(SCRATCH), ...i32c(64), op.get, BASE, op.get, I, ...i32c(32), op.i32mul, op.i32add, op.call, F.hash,
    op.get, I, ...i32c(1), op.i32sub, op.set, I, op.br, 0,
    op.end, op.end,
  ]
  return { locals: [1, 5, I32], code: c }
}

function moduleBytes(): Uint8Array {
  const types = [
    [0x60, 0, 0], // () -> ()
    [0x60, 2, I32, I32, 0], // (i32, i32) -> ()
    [0x60, 3, I32, I32, I32, 0], // (i32, i32, i32) -> ()
  ]
  // [type, body] in function index order (F).
  const fns: [number, { locals: number[]; code: number[] }][] = [
    [0, permutation()],
    [1, absorb()],
    [2, finish()],
    [2, hash()],
    [2, leaf()],
    [1, tree()],
    [0, reset()],
  ]
  const rc: number[] = []
  for (const k of roundConstants()) for (let b = 0; b < 8; b++) rc.push(Number((k >> BigInt(8 * b)) & 0xffn))
  const bodies = fns.map(([, f]) => {
    const body = [...f.locals, ...f.code, op.end]
    return [...uleb(body.length), ...body]
  })
  const exports: [string, number, number][] = [
    ['memory', 2, 0],
    ['hash', 0, F.hash],
    ['leaf', 0, F.leaf],
    ['tree', 0, F.tree],
    ['reset', 0, F.reset],
    ['absorb', 0, F.absorb],
    ['finish', 0, F.finish],
  ]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(fns.map(([t]) => uleb(t)))),
    ...section(5, vec([[0x00, ...uleb(2)]])), // memory: at least 2 pages, growable
    ...section(7, vec(exports.map(([n, kind, idx]) => [...name(n), kind, ...uleb(idx)]))),
    ...section(10, vec(bodies)),
    ...section(11, vec([[0x00, ...i32c(RC_AT), op.end, ...uleb(rc.length), ...rc]])),
  ])
}

// The few WebAssembly globals used here (the project's type libraries carry no WebAssembly declarations).
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => { readonly exports: object }
}

interface Exports {
  readonly memory: { readonly buffer: ArrayBuffer; grow(pages: number): number }
  hash(ptr: number, len: number, out: number): void
  leaf(ptr: number, len: number, out: number): void
  tree(base: number, first: number): void
  reset(): void
  absorb(ptr: number, blocks: number): void
  finish(ptr: number, rem: number, out: number): void
}

const wasm = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes())).exports as unknown as Exports
let heap = new Uint8Array(wasm.memory.buffer)
let heapView = new DataView(wasm.memory.buffer)

/** The module's memory as bytes, grown to hold at least `bytes` (the views are renewed when the memory grows). */
function memory(bytes: number): Uint8Array {
  if (heap.length < bytes) wasm.memory.grow(Math.ceil((bytes - heap.length) / 65_536))
  if (heap.buffer !== wasm.memory.buffer) {
    heap = new Uint8Array(wasm.memory.buffer)
    heapView = new DataView(wasm.memory.buffer)
  }
  return heap
}

/** abi.encode(seq) (32 bytes, big-endian, left-padded) at SCRATCH. */
function seqWord(m: Uint8Array, seq: bigint): void {
  m.fill(0, SCRATCH, SCRATCH + 24)
  heapView.setBigUint64(SCRATCH + 24, seq)
}

/** Hash input[inOff .. inOff+len] leaving the digest at OUT. */
function hashToOut(input: Uint8Array, inOff: number, len: number): Uint8Array {
  const m = memory(NODES_AT)
  if (len <= IN_CAPACITY) {
    m.set(input.subarray(inOff, inOff + len), IN)
    wasm.hash(IN, len, OUT)
    return m
  }
  wasm.reset()
  let at = inOff
  const end = inOff + len
  while (end - at >= RATE) {
    const blocks = Math.min(Math.floor((end - at) / RATE), IN_CAPACITY / RATE)
    m.set(input.subarray(at, at + blocks * RATE), IN)
    wasm.absorb(IN, blocks)
    at += blocks * RATE
  }
  m.set(input.subarray(at, end), IN)
  wasm.finish(IN, end - at, OUT)
  return m
}

/**
 * keccak256(input[inOff .. inOff+len]) written to out[outOff .. outOff+32].
 * `out` may alias `input`.
 */
export function keccak256Into(input: Uint8Array, inOff: number, len: number, out: Uint8Array, outOff: number): void {
  if (len < 0 || inOff < 0 || inOff + len > input.length || outOff < 0 || outOff + 32 > out.length) throw new RangeError('keccak256Into: range out of bounds')
  out.set(hashToOut(input, inOff, len).subarray(OUT, OUT + 32), outOff)
}

/** keccak256 of any input. */
export function keccak256(input: Uint8Array): Uint8Array {
  return hashToOut(input, 0, input.length).slice(OUT, OUT + 32)
}

/**
 * The OpenZeppelin StandardMerkleTree leaf of ['uint64', 'bytes32'] [seq, keccak256(bytes)]:
 * keccak256(keccak256(abi.encode(seq, keccak256(bytes)))), in one call.
 * `seq` must be a uint64 (the caller checks).
 */
export function seqLeaf(seq: bigint, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  seqLeafInto(seq, bytes, out, 0)
  return out
}

/** seqLeaf written to out[outOff .. outOff+32]. */
export function seqLeafInto(seq: bigint, bytes: Uint8Array, out: Uint8Array, outOff: number): void {
  if (outOff < 0 || outOff + 32 > out.length) throw new RangeError('seqLeafInto: output range out of bounds')
  if (bytes.length > IN_CAPACITY) {
    out.set(leafOfHash(seq, keccak256(bytes)), outOff)
    return
  }
  const m = memory(NODES_AT)
  seqWord(m, seq)
  m.set(bytes, IN)
  wasm.leaf(IN, bytes.length, OUT)
  out.set(m.subarray(OUT, OUT + 32), outOff)
}

/** seqLeaf from the 32-byte hash of the bytes: keccak256(keccak256(abi.encode(seq, hash))). */
export function leafOfHash(seq: bigint, hash32: Uint8Array): Uint8Array {
  const m = memory(NODES_AT)
  seqWord(m, seq)
  m.set(hash32, SCRATCH + 32)
  wasm.hash(SCRATCH, 64, OUT)
  wasm.hash(OUT, 32, OUT)
  return m.slice(OUT, OUT + 32)
}

/**
 * Hash the internal nodes of a Merkle tree laid out as merkle.ts does
 * (32-byte nodes, node i's children at 2i+1 and 2i+2, leaves filled in):
 * nodes first … 0 are computed in place with the commutative pair hash.
 */
export function hashTreeNodes(nodes: Uint8Array, first: number): void {
  if (first < 0) return
  const m = memory(NODES_AT + nodes.length)
  m.set(nodes, NODES_AT)
  wasm.tree(NODES_AT, first)
  nodes.set(m.subarray(NODES_AT, NODES_AT + 32 * (first + 1)), 0)
}
