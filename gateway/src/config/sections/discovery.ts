// [discovery]: announcing the gateway on the local network with multicast
// DNS (RFC 6762) and DNS-Based Service Discovery (RFC 6763), so firmware
// finds the API and the MQTT broker without an IP address typed in
// (docs/discovery.md).

import { Type, type Static } from '@sinclair/typebox'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

export const DiscoverySection = Type.Object(
  {
    mdns: Type.Boolean({
      description:
        'Announce the gateway over mDNS/DNS-SD: _fieldproof._tcp (HTTP API port; TXT address, version, path) and, when the MQTT broker is on, _mqtt._tcp. The instance name is [gateway] name; the host name <name>.local.',
      default: true,
      simulationDefault: false,
    }),
    interface: Type.String({
      description:
        'Where to announce: a network interface name ("wlan0", "eth0") or one of its IPv4 addresses. Empty means every interface with an IPv4 address, the loopback excepted.',
      default: '',
      maxLength: 64,
    }),
  },
  table('Finding the gateway on the local network (mDNS / DNS-SD). See docs/discovery.md.'),
)

export type DiscoveryConfig = Static<typeof DiscoverySection>
