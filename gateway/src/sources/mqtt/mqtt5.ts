// MQTT 5 on top of aedes, which speaks 3.1 and 3.1.1 only (aedes 1.x,
// lib/handlers/connect.js refuses protocol level 5). The wire parser aedes
// uses (mqtt-packet) reads and writes MQTT 5; what is missing is (1) letting
// a level-5 CONNECT through and (2) writing packets to that client in the
// MQTT 5 encoding with reason codes. This module does both, for the clients
// it marks, and nothing for anyone else:
//
// - markV5(client, packet) in preConnect: the parser keeps its level-5
//   settings, aedes sees level 4;
// - mqtt-packet's writeToStream is wrapped once: for a marked client's
//   socket, CONNACK return codes become MQTT 5 reason codes (§3.2.2.2) with
//   Maximum Packet Size, PUBACK carries the reason code and reason string
//   set by setPubackReason (§3.4.2.1), UNSUBACK gets one reason per filter.
//
// MQTT 5 features beyond that (session expiry, topic aliases, shared
// subscriptions, AUTH) are not offered: CONNACK says Topic Alias Maximum 0,
// Shared Subscription Available 0, and requests are handled as 3.1.1 would.

import mqttPacket from 'mqtt-packet'

const V5 = Symbol.for('fieldproof.mqtt5')
const PUBACK_REASONS = Symbol.for('fieldproof.mqtt5.puback')
const UNSUB_COUNTS = Symbol.for('fieldproof.mqtt5.unsub')
const CONNACK_REASON = Symbol.for('fieldproof.mqtt5.connack')
const MAX_PACKET = Symbol.for('fieldproof.mqtt5.maxPacket')

/** MQTT 5 reason codes used here (MQTT 5.0 §2.4). */
export const REASON = {
  success: 0x00,
  unspecified: 0x80,
  implementationSpecific: 0x83,
  unsupportedProtocol: 0x84,
  clientIdNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
  connectionRateExceeded: 0x9f,
} as const

/** MQTT 3.1.1 CONNACK return code → MQTT 5 reason code (§3.2.2.3 / 3.1.1 §3.2.2.3). */
const CONNACK_V5: Readonly<Record<number, number>> = { 0: 0, 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87 }

type AnyClient = Record<PropertyKey, unknown> & { conn?: unknown; _parser?: { settings?: Record<string, unknown>; on?: (ev: string, f: (p: Record<string, unknown>) => void) => void } }
type Packet = Record<string, unknown> & { cmd?: string; messageId?: number }

let installed = false

/** Wrap mqtt-packet's writer once (idempotent). */
export function installMqtt5Writer(): void {
  if (installed) return
  installed = true
  const mp = mqttPacket as unknown as { writeToStream: (p: Packet, s: unknown, o?: { protocolVersion: number }) => boolean }
  const original = mp.writeToStream
  mp.writeToStream = function writeToStream(packet: Packet, stream: unknown, opts?: { protocolVersion: number }): boolean {
    const client = (stream as { client?: AnyClient } | null)?.client
    if (opts !== undefined || client === undefined || client[V5] !== true) return original(packet, stream, opts)
    return original(toV5(packet, client), stream, { protocolVersion: 5 })
  }
}

function toV5(packet: Packet, client: AnyClient): Packet {
  switch (packet.cmd) {
    case 'connack': {
      const rc = Number(packet['returnCode'] ?? 0)
      const override = client[CONNACK_REASON] as number | undefined
      const reasonCode = rc === 0 ? 0 : (override ?? CONNACK_V5[rc] ?? REASON.unspecified)
      return {
        cmd: 'connack',
        sessionPresent: packet['sessionPresent'] === true,
        reasonCode,
        properties: { maximumPacketSize: client[MAX_PACKET] as number, topicAliasMaximum: 0, sharedSubscriptionAvailable: false },
      }
    }
    case 'puback': {
      const reasons = client[PUBACK_REASONS] as Map<number, { code: number; reason: string }> | undefined
      const r = packet.messageId !== undefined ? reasons?.get(packet.messageId) : undefined
      if (!r) return packet
      reasons?.delete(packet.messageId as number)
      return { cmd: 'puback', messageId: packet.messageId as number, reasonCode: r.code, properties: { reasonString: r.reason.slice(0, 240) } }
    }
    case 'suback': {
      const granted = (packet['granted'] as number[] | undefined)?.map((g) => (g === 128 ? REASON.notAuthorized : g))
      return { ...packet, granted }
    }
    case 'unsuback': {
      const counts = client[UNSUB_COUNTS] as Map<number, number> | undefined
      const n = packet.messageId !== undefined ? (counts?.get(packet.messageId) ?? 1) : 1
      counts?.delete(packet.messageId as number)
      return { ...packet, granted: new Array<number>(n).fill(0) }
    }
    default:
      return packet
  }
}

/**
 * Call from aedes preConnect with the CONNECT packet. For protocol level 5:
 * marks the client, keeps the parser on level 5 and shows aedes level 4.
 * Returns true for an MQTT 5 client.
 */
export function markV5(client: unknown, packet: Record<string, unknown>, maxPacketBytes: number): boolean {
  if (packet['protocolVersion'] !== 5) return false
  const c = client as AnyClient
  c[V5] = true
  c[MAX_PACKET] = maxPacketBytes
  c[PUBACK_REASONS] = new Map<number, { code: number; reason: string }>()
  const counts = new Map<number, number>()
  c[UNSUB_COUNTS] = counts
  // The parser decodes later packets by its settings (the CONNECT object it
  // produced); give it its own copy before aedes sees level 4.
  if (c._parser) c._parser.settings = { ...packet }
  c._parser?.on?.('packet', (p) => {
    if (p['cmd'] === 'unsubscribe' && Array.isArray(p['unsubscriptions'])) counts.set(p['messageId'] as number, p['unsubscriptions'].length)
  })
  packet['protocolVersion'] = 4
  return true
}

export function isV5(client: unknown): boolean {
  return (client as AnyClient | null)?.[V5] === true
}

/** The reason code and string the next PUBACK for `messageId` carries (MQTT 5 clients). */
export function setPubackReason(client: unknown, messageId: number, code: number, reason: string): void {
  ;((client as AnyClient)[PUBACK_REASONS] as Map<number, { code: number; reason: string }> | undefined)?.set(messageId, { code, reason })
}

/** Override the CONNACK reason code of a refused MQTT 5 client. */
export function setConnackReason(client: unknown, code: number): void {
  ;(client as AnyClient)[CONNACK_REASON] = code
}

/** Write an MQTT 5 DISCONNECT with a reason code (best effort) before closing. */
export function disconnectV5(client: unknown, code: number, reason: string): void {
  const c = client as AnyClient
  const conn = c.conn as { writable?: boolean } | undefined
  if (!isV5(client) || !conn?.writable) return
  try {
    const mp = mqttPacket as unknown as { writeToStream: (p: Packet, s: unknown, o?: { protocolVersion: number }) => boolean }
    mp.writeToStream({ cmd: 'disconnect', reasonCode: code, properties: { reasonString: reason.slice(0, 240) } }, conn, { protocolVersion: 5 })
  } catch {
    // closing anyway
  }
}
