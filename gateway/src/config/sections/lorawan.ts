// [sources.lorawan]: the LoRaWAN server side of the gateway (docs/lorawan.md).
// A Semtech UDP (protocol v2) server for packet forwarders, device sessions
// for the devices registered here ("session" trust mode), radio witnesses of
// other devices' frames ("witness" trust mode) and an optional byte-for-byte
// relay to upstream network servers, and the LNS side of LoRa Basics Station
// ([sources.lorawan.station]).

import { Type } from '@sinclair/typebox'

/** schema.ts LISTEN_FORMAT (not imported: schema.ts imports this file). */
const LISTEN_FORMAT = 'host-port'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

/** Regions the LoRaWAN server schedules downlinks for (RP002-1.0.3). */
export const LORAWAN_REGIONS = ['EU868', 'US915', 'AU915', 'AS923', 'KR920', 'IN865'] as const

const HOST_PORT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$'

export const LorawanWitnessSection = Type.Object(
  {
    enabled: Type.Boolean({
      description:
        'Store frames of devices whose keys this gateway does not hold as "witness" readings: the raw PHYPayload with radio metadata, DevAddr and FCnt, never decrypted, auth "none". Device id lorawan-witness:<devaddr hex>.',
      default: false,
    }),
    dev_addr_prefixes: Type.Array(
      Type.String({ pattern: '^[0-9A-Fa-f]{8}/([0-9]|[12][0-9]|3[0-2])$' }),
      {
        description:
          'Witness only DevAddrs under one of these prefixes, "ADDR/BITS" in hex, e.g. "78000000/7". Empty with empty net_ids: every DevAddr.',
        default: [],
        maxItems: 64,
      },
    ),
    net_ids: Type.Array(
      Type.String({ pattern: '^(0x)?[0-9A-Fa-f]{6}$' }),
      {
        description:
          'Witness only DevAddrs of these NetIDs (24-bit hex, e.g. "00003C"; the DevAddr prefix follows from the NetID type, LoRaWAN Backend Interfaces TS002). Combined with dev_addr_prefixes as "any of".',
        default: [],
        maxItems: 64,
      },
    ),
  },
  table('Witness mode: frames of devices whose keys live elsewhere, stored unverified.'),
)

export const LorawanRelaySection = Type.Object(
  {
    upstreams: Type.Array(
      Type.String({ pattern: HOST_PORT_PATTERN }),
      {
        description:
          'Network servers every PUSH_DATA and PULL_DATA is also forwarded to, byte for byte, HOST:PORT (e.g. "127.0.0.1:1680" for a Helium hotspot\'s gateway-rs). Their PULL_RESP downlinks are relayed back to the right forwarder. Empty: no relay.',
        default: [],
        maxItems: 8,
      },
    ),
    max_forwarders: Type.Integer({
      description: 'Most forwarder EUIs given their own relay socket (each forwarder is a distinct gateway to the upstream); datagrams of further EUIs are not relayed (counted).',
      default: 64,
      minimum: 1,
      maximum: 4096,
    }),
  },
  table('Relay to upstream LoRaWAN network servers (Semtech UDP).'),
)

export const LorawanStationSection = Type.Object(
  {
    enabled: Type.Boolean({
      description:
        'Run the LNS side of LoRa Basics Station: router-info discovery and the router WebSocket for gateways that ship Basics Station (uplinks feed the same sessions and witness handling as Semtech UDP).',
      default: false,
    }),
    listen: Type.String({
      description:
        'TCP address of the Basics Station LNS (router-info and the router WebSockets), HOST:PORT. Set the station\'s tc.uri to ws://HOST:PORT (wss:// with TLS). Keep 127.0.0.1 unless stations connect from other machines, and then use TLS and a token.',
      default: '127.0.0.1:3001',
      format: LISTEN_FORMAT,
    }),
    tls_cert_file: Type.String({ description: 'PEM certificate (chain) the LNS presents; with tls_key_file, stations connect with wss://. Empty: plain ws://.', default: '' }),
    tls_key_file: Type.String({ description: 'PEM private key of tls_cert_file.', default: '' }),
    tls_client_ca_file: Type.String({
      description: 'PEM CA certificates that stations\' client certificates (tc.crt) must chain to; empty: no client certificates asked. Needs tls_cert_file; not combined with auth_token_file (a station\'s tc.key holds either its key or a token).',
      default: '',
    }),
    auth_token_file: Type.String({
      description:
        'File holding the token stations must send in their Authorization header (the station takes the header from its tc.key file: "Authorization: Bearer <token>"). The file may hold the bare token or the whole header line. Empty: no token checked.',
      default: '',
    }),
    max_stations: Type.Integer({ description: 'Most Basics Station gateways tracked at once; further connections are refused (counted).', default: 64, minimum: 1, maximum: 4096 }),
    ping_interval_s: Type.Integer({
      description: 'WebSocket ping interval; a station that does not answer one ping by the next is disconnected.',
      default: 30,
      minimum: 5,
      maximum: 600,
    }),
  },
  table('LoRa Basics Station: the LNS protocol (router-info, router WebSocket, router_config, updf/jreq/dnmsg/dntxed, timesync).'),
)

export const LorawanSourceSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Run the LoRaWAN server (Semtech UDP packet forwarder protocol v2).', default: false }),
    listen: Type.String({
      description:
        'UDP address packet forwarders send to, HOST:PORT. The Semtech protocol has no authentication: keep 127.0.0.1 unless the forwarder runs on another machine, and then set gateway_euis.',
      default: '127.0.0.1:1700',
      format: LISTEN_FORMAT,
    }),
    region: Type.Union(
      LORAWAN_REGIONS.map((r) => Type.Literal(r)),
      { description: 'LoRaWAN regional parameters used for join-accepts and downlinks.', default: 'EU868' },
    ),
    net_id: Type.String({
      description: 'NetID (24-bit hex) of the sessions this gateway creates; DevAddrs of joined devices are allocated under it. 000000 is the experimental/private NetID.',
      default: '000000',
      pattern: '^(0x)?[0-9A-Fa-f]{6}$',
    }),
    sub_band: Type.Integer({
      description:
        'US915/AU915: the 8-channel sub-band (1..8) devices and gateways use: join-accepts carry a CFList channel mask enabling its eight 125 kHz channels and its 500 kHz channel, and Basics Station gateways get it in router_config. Ignored in other regions.',
      default: 2,
      minimum: 1,
      maximum: 8,
    }),
    gateway_euis: Type.Array(
      Type.String({ pattern: '^[0-9A-Fa-f]{16}$' }),
      { description: 'Packet forwarders accepted, by gateway EUI (16 hex digits). Empty: any forwarder that can reach the socket.', default: [], maxItems: 1024 },
    ),
    max_forwarders: Type.Integer({
      description: 'Most distinct forwarders tracked at once; datagrams from further EUIs are rejected (counted).',
      default: 256,
      minimum: 1,
      maximum: 65_536,
    }),
    dedup_window_ms: Type.Integer({
      description: 'How long the same PHYPayload heard by several forwarders is collected before it is handled once, with every reception attached.',
      default: 200,
      minimum: 0,
      maximum: 2000,
    }),
    rx1_delay_s: Type.Integer({
      description: 'RECEIVE_DELAY1 of the sessions this gateway creates (RxDelay in the join-accept), seconds. ABP devices must use the same.',
      default: 1,
      minimum: 1,
      maximum: 15,
    }),
    downlink_lead_ms: Type.Integer({
      description: 'A downlink is sent for a receive window only if at least this many milliseconds remain before it opens (the forwarder needs time to queue it); otherwise the next window is used.',
      default: 100,
      minimum: 10,
      maximum: 2000,
    }),
    gps_clock: Type.Boolean({
      description: 'Mark the clock "gps" while forwarders report GPS receive times that agree with the wall clock (within 1 s).',
      default: true,
    }),
    codec_timeout_ms: Type.Integer({
      description: 'Time limit of one run of a device\'s JavaScript payload codec; a codec over it is killed and counted, and the reading is stored undecoded.',
      default: 100,
      minimum: 5,
      maximum: 5000,
    }),
    codec_memory_mb: Type.Integer({
      description: 'Heap limit of the isolated worker that runs JavaScript payload codecs, MiB.',
      default: 64,
      minimum: 16,
      maximum: 1024,
    }),
    witness: LorawanWitnessSection,
    relay: LorawanRelaySection,
    station: LorawanStationSection,
  },
  table('LoRaWAN: a Semtech UDP server for packet forwarders, device sessions ("session" trust mode), witnesses ("witness" trust mode), relay to network servers.'),
)
