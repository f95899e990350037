// What the LoRaWAN integration tests share: the device keys of the LoRaWAN
// 1.0.x sample sessions, a complete [sources.lorawan] table, and polling.
import { aesKey, type AesKey } from '../../gateway/src/core/lorawan/crypto.ts'
import type { LorawanSectionConfig } from '../../gateway/src/sources/lorawan/server.ts'

export const APP_KEY = '2b7e151628aed2a6abf7158809cf4f3c'
export const DEV_EUI = '0004a30b001c0530'
export const JOIN_EUI = '70b3d57ed0000000'
export const NWK_SKEY = '44024241ed4ce9a68c6a8bc055233fd3'
export const APP_SKEY = 'ec925802ae430ca77fd3dd73cb2cc588'

/** A hex AES key that is known to be valid. */
export const k = (h: string): AesKey => aesKey(h) as AesKey

/** A [sources.lorawan] table: enabled, EU868, on 127.0.0.1 with an OS-chosen port. */
export function lorawanConfig(over: Partial<LorawanSectionConfig> = {}): LorawanSectionConfig {
  return {
    enabled: true,
    listen: '127.0.0.1:0',
    region: 'EU868',
    net_id: '000000',
    gateway_euis: [],
    max_forwarders: 256,
    dedup_window_ms: 100,
    rx1_delay_s: 1,
    downlink_lead_ms: 100,
    gps_clock: true,
    codec_timeout_ms: 50,
    codec_memory_mb: 32,
    witness: { enabled: false, dev_addr_prefixes: [], net_ids: [] },
    relay: { upstreams: [], max_forwarders: 64 },
    ...over,
  }
}

/** Poll `cond` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
