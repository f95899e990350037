// [sources.mqtt]: the embedded MQTT broker for WiFi sensors (docs/mqtt.md):
// MQTT 3.1.1 and 5 over TCP, optionally TLS and WebSocket; per-device
// credentials and topic ACLs; device-signed readings (docs/device-protocol.md).

import { Type } from '@sinclair/typebox'

/** schema.ts LISTEN_FORMAT (not imported: schema.ts imports this file). */
const LISTEN_FORMAT = 'host-port'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const
const OPTIONAL_HOST_PORT = '^$|^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$'
const optionalListen = (description: string) => Type.String({ description, default: '', pattern: OPTIONAL_HOST_PORT })

export const MqttSourceSection = Type.Object(
  {
    enabled: Type.Boolean({
      description: 'Run the embedded MQTT broker. Devices log in with credentials from `fieldproof devices add mqtt` (or publish device-signed readings).',
      default: false,
      simulationDefault: true,
    }),
    listen: Type.String({
      description: 'MQTT over TCP, HOST:PORT (MQTT 3.1.1 and 5).',
      default: '0.0.0.0:1883',
      simulationDefault: '127.0.0.1:1883',
      format: LISTEN_FORMAT,
    }),
    allow_anonymous: Type.Boolean({
      description:
        'Let clients connect without a user name. Anonymous clients may only publish JSON readings under `sim/<name>` (device id `mqtt:<name>`, auth "none") and device-signed messages to `fieldproof/<device>/up`; they may not subscribe.',
      default: false,
      simulationDefault: true,
    }),
    max_connections: Type.Integer({ description: 'Most simultaneous client connections (TCP, TLS and WebSocket together).', default: 256, minimum: 1, maximum: 100_000 }),
    max_packet_bytes: Type.Integer({
      description: 'Largest MQTT packet accepted, fixed header included. Bigger packets close the connection (MQTT 5: DISCONNECT 0x95).',
      default: 65_536,
      minimum: 256,
      maximum: 16_777_216,
    }),
    connect_timeout_ms: Type.Integer({ description: 'A connection that sends no CONNECT within this time is closed.', default: 10_000, minimum: 100, maximum: 300_000 }),
    auth_failures_per_minute: Type.Integer({
      description: 'Failed logins per minute from one IP address after which further logins from it are refused without checking (throttling).',
      default: 10,
      minimum: 1,
      maximum: 100_000,
    }),
    signature_workers: Type.Integer({
      description: 'Worker threads that check device signatures (MQTT and HTTP signed readings); 0 checks them on the main thread.',
      default: 1,
      minimum: 0,
      maximum: 16,
    }),
    tls_listen: optionalListen('MQTT over TLS, HOST:PORT (e.g. "0.0.0.0:8883"); empty: off. Needs tls_cert and tls_key.'),
    tls_cert: Type.String({ description: 'PEM certificate chain file for tls_listen and wss (absolute path).', default: '' }),
    tls_key: Type.String({ description: 'PEM private key file for tls_listen and wss.', default: '' }),
    ws_listen: optionalListen('MQTT over WebSocket, HOST:PORT (path /mqtt or /); empty: off. Uses TLS (wss) when tls_cert and tls_key are set.'),
  },
  table('The embedded MQTT broker for WiFi sensors (Tasmota, ESPHome, Shelly, device-signed readings).'),
)
