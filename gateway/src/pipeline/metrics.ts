// A small Prometheus registry: counters, gauges and histograms with labels,
// rendered in the text exposition format (version 0.0.4). No dependency.

type Labels = Readonly<Record<string, string>>

/** Rendered label sets by their raw form (names and values in the caller's order), bounded. */
const LABEL_KEYS = new Map<string, string>()
const LABEL_KEYS_MAX = 10_000

/**
 * The exposition form of a label set (names sorted, values escaped), which
 * also keys its series. Called on every counter increment and histogram
 * observation, so label sets seen before are looked up, not rendered again.
 */
function labelKey(labels: Labels): string {
  let raw = ''
  for (const k in labels) {
    const v = labels[k] ?? ''
    // Length-prefixed: no two label sets share a raw form, whatever their values hold.
    raw += `${k.length}:${k}${v.length}:${v}`
  }
  if (raw === '') return ''
  let key = LABEL_KEYS.get(raw)
  if (key === undefined) {
    key = Object.keys(labels)
      .sort()
      .map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`)
      .join(',')
    if (LABEL_KEYS.size < LABEL_KEYS_MAX) LABEL_KEYS.set(raw, key)
  }
  return key
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return 'NaN'
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return String(n)
}

interface Metric {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  render(): string[]
}

export class Counter implements Metric {
  readonly type = 'counter' as const
  readonly name: string
  readonly help: string
  readonly #values = new Map<string, number>()
  constructor(name: string, help: string) {
    this.name = name
    this.help = help
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels)
    this.#values.set(k, (this.#values.get(k) ?? 0) + by)
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0
  }
  total(): number {
    let t = 0
    for (const v of this.#values.values()) t += v
    return t
  }
  render(): string[] {
    if (this.#values.size === 0) return [`${this.name} 0`]
    return [...this.#values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`)
  }
}

export class Gauge implements Metric {
  readonly type = 'gauge' as const
  readonly name: string
  readonly help: string
  readonly #values = new Map<string, number>()
  readonly #collect: (() => Iterable<[Labels, number]>) | undefined
  constructor(name: string, help: string, collect?: () => Iterable<[Labels, number]>) {
    this.name = name
    this.help = help
    this.#collect = collect
  }
  set(value: number, labels: Labels = {}): void {
    this.#values.set(labelKey(labels), value)
  }
  get(labels: Labels = {}): number | undefined {
    return this.#values.get(labelKey(labels))
  }
  render(): string[] {
    const out: string[] = []
    if (this.#collect) {
      for (const [l, v] of this.#collect()) {
        const k = labelKey(l)
        out.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`)
      }
    }
    for (const [k, v] of this.#values) out.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`)
    return out
  }
}

export class Histogram implements Metric {
  readonly type = 'histogram' as const
  readonly name: string
  readonly help: string
  readonly buckets: readonly number[]
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>()
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name
    this.help = help
    this.buckets = [...buckets].sort((a, b) => a - b)
  }
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels)
    let s = this.#series.get(k)
    if (!s) {
      s = { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 }
      this.#series.set(k, s)
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] ?? 0) + 1
    s.sum += value
    s.count++
  }
  /** Approximate quantile from the buckets (upper bound of the bucket holding it). */
  quantile(q: number, labels: Labels = {}): number | undefined {
    const s = this.#series.get(labelKey(labels))
    if (!s || s.count === 0) return undefined
    const target = q * s.count
    for (let i = 0; i < this.buckets.length; i++) if ((s.counts[i] ?? 0) >= target) return this.buckets[i]
    return Infinity
  }
  render(): string[] {
    const out: string[] = []
    for (const [k, s] of this.#series) {
      const pre = k ? `${k},` : ''
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{${pre}le="${fmt(b)}"} ${s.counts[i] ?? 0}`))
      out.push(`${this.name}_bucket{${pre}le="+Inf"} ${s.count}`)
      out.push(`${this.name}_sum${k ? `{${k}}` : ''} ${fmt(s.sum)}`)
      out.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`)
    }
    return out
  }
}

/** All of the gateway's metrics; plugins register theirs here. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>()

  counter(name: string, help: string): Counter {
    return this.#add(new Counter(name, help))
  }
  gauge(name: string, help: string, collect?: () => Iterable<[Labels, number]>): Gauge {
    return this.#add(new Gauge(name, help, collect))
  }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, buckets))
  }

  #add<M extends Metric>(m: M): M {
    const existing = this.#metrics.get(m.name)
    if (existing) {
      if (existing.type !== m.type) throw new Error(`metric ${m.name} already registered as ${existing.type}`)
      return existing as M
    }
    this.#metrics.set(m.name, m)
    return m
  }

  get(name: string): Metric | undefined {
    return this.#metrics.get(name)
  }

  /** Prometheus text exposition format. */
  render(): string {
    const lines: string[] = []
    for (const m of this.#metrics.values()) {
      lines.push(`# HELP ${m.name} ${m.help.replace(/\n/g, ' ')}`)
      lines.push(`# TYPE ${m.name} ${m.type}`)
      lines.push(...m.render())
    }
    return lines.join('\n') + '\n'
  }
}
