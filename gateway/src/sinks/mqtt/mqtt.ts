// The MQTT sink (docs/upstream-protocol.md, "MQTT"): publish each sealed
// batch as a fieldproof.batch document (JSON or CBOR) to an external broker
// at QoS 1 (MQTT 3.1.1 §4.3.2: acknowledged by PUBACK), on a topic built
// from a template with the gateway address. A batch counts as delivered only
// on PUBACK. While the broker is unreachable a send fails fast (the runner
// backs off) instead of piling messages into the client's offline queue;
// mqtt.js reconnects in the background. A message whose PUBACK was lost is
// published again (DUP), so the broker side sees a batch at least once and
// dedupes by the batch id in the document.

import { readFileSync } from 'node:fs'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { Sink, SinkAck, SinkBatch } from '../../pipeline/sink.ts'
import { encodeWire, type WireFormat, type WirePayload } from '../../pipeline/upstream-wire.ts'

export interface MqttSinkOptions {
  readonly id?: string
  /** mqtt://HOST:PORT or mqtts://HOST:PORT. */
  readonly url: string
  /** Topic template: {gateway} (lowercase address), {batch} (batch id). */
  readonly topic: string
  readonly clientId: string
  readonly username?: string
  readonly password?: string
  /** PEM file paths for mqtts://. */
  readonly caFile?: string
  readonly certFile?: string
  readonly keyFile?: string
  readonly format: WireFormat
  readonly payload: WirePayload
  /** Delay between reconnect attempts (ms). Default 2000. */
  readonly reconnectMs?: number
}

/** Expand a topic template. */
export function expandTopic(template: string, gateway: string, batchId: bigint): string {
  return template.replaceAll('{gateway}', gateway.toLowerCase()).replaceAll('{batch}', batchId.toString())
}

export class MqttSink implements Sink {
  readonly id: string
  readonly #o: MqttSinkOptions
  #client: MqttClient | undefined
  #lastConnectError: string | null = null
  #closed = false

  constructor(o: MqttSinkOptions) {
    this.id = o.id ?? 'mqtt'
    this.#o = o
    const u = new URL(o.url)
    if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new Error(`${o.url}: use mqtt:// or mqtts://`)
  }

  #connect(): MqttClient {
    if (this.#client) return this.#client
    const o = this.#o
    const opts: IClientOptions = {
      clientId: o.clientId,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: o.reconnectMs ?? 2000,
      connectTimeout: 10_000,
      // Fail fast while offline: the runner's backoff is the queue, not the client's memory.
      queueQoSZero: false,
      ...(o.username !== undefined && o.username !== '' ? { username: o.username } : {}),
      ...(o.password !== undefined && o.password !== '' ? { password: o.password } : {}),
      ...(o.caFile ? { ca: readFileSync(o.caFile) } : {}),
      ...(o.certFile ? { cert: readFileSync(o.certFile) } : {}),
      ...(o.keyFile ? { key: readFileSync(o.keyFile) } : {}),
    }
    const client = connect(o.url, opts)
    client.on('error', (e) => {
      this.#lastConnectError = e.message
    })
    client.on('connect', () => {
      this.#lastConnectError = null
    })
    this.#client = client
    return client
  }

  async send(batch: SinkBatch, signal: AbortSignal): Promise<SinkAck> {
    if (this.#closed) return { ok: false, retry: true, reason: 'the sink is closed' }
    const client = this.#connect()
    if (!client.connected) {
      // Give a fresh client a moment to connect before the first publish.
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 2000)
        function done() {
          clearTimeout(t)
          client.off('connect', done)
          signal.removeEventListener('abort', done)
          resolve()
        }
        client.once('connect', done)
        signal.addEventListener('abort', done, { once: true })
      })
      if (!client.connected) return { ok: false, retry: true, reason: `broker ${this.#display()} not connected${this.#lastConnectError ? `: ${this.#lastConnectError}` : ''}` }
    }
    const { body } = encodeWire(batch, this.#o.payload, this.#o.format)
    const topic = expandTopic(this.#o.topic, batch.gateway, batch.id)
    return new Promise<SinkAck>((resolve) => {
      let settled = false
      const finish = (a: SinkAck) => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', onAbort)
        client.off('close', onClose)
        resolve(a)
      }
      const onAbort = () => finish({ ok: false, retry: true, reason: 'no PUBACK before the timeout' })
      const onClose = () => finish({ ok: false, retry: true, reason: `connection to ${this.#display()} closed before PUBACK` })
      signal.addEventListener('abort', onAbort, { once: true })
      client.once('close', onClose)
      client.publish(topic, Buffer.from(body.buffer, body.byteOffset, body.byteLength), { qos: 1 }, (err) => {
        if (err) finish({ ok: false, retry: true, reason: `publish failed: ${err.message}` })
        else finish({ ok: true })
      })
    })
  }

  #display(): string {
    const u = new URL(this.#o.url)
    return `${u.protocol}//${u.host}`
  }

  status(): Record<string, unknown> {
    return { broker: this.#display(), connected: this.#client?.connected ?? false, lastConnectError: this.#lastConnectError, topic: this.#o.topic }
  }

  async close(): Promise<void> {
    this.#closed = true
    const c = this.#client
    if (c) await new Promise<void>((resolve) => c.end(true, {}, () => resolve()))
  }
}
