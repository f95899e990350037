// LoRaWAN 1.0.x PHYPayload inspector: `fieldproof decode lorawan <hex|base64>
// [--appkey K | --nwkskey K --appskey K] [--fcnt N]`. Prints the frame's
// fields (LoRaWAN L2 1.0.4 §4: MHDR, FHDR, FPort, MIC; §6.2: join-request and
// join-accept), whether the MIC verifies with the keys given, and the
// decrypted FRMPayload. It never stores anything and yields no metrics: the
// application payload is decoded by a payload decoder (cayenne-lpp, ...).
// Built on core/lorawan (the same frame and crypto code the LoRaWAN source uses).
//
// Options: appkey (join-request MIC; join-accept decryption and MIC),
// nwkskey (data MIC; FPort 0 payload), appskey (FPort > 0 payload),
// fcnt (the 32-bit frame counter, or any counter with the right high 16 bits;
// default: the 16 bits on air). Keys are 32 hex digits and are never echoed.

import { type Decoder, type DecodeResult, type RawFrame, type DecodeOptions, reject } from '../core/decoder.ts'
import { aesKey, bytesToHex, type AesKey } from '../core/lorawan/crypto.ts'
import { decryptFrmPayload, openJoinAccept, parsePhyPayload, verifyDataFrameMic, verifyJoinRequestMic } from '../core/lorawan/phy.ts'

type Meta = Record<string, number | string | boolean>

function key(options: DecodeOptions | undefined, name: string): { key?: AesKey; error?: string } {
  const v = options?.[name]
  if (v === undefined || v === '') return {}
  const k = aesKey(v.replace(/^0x/i, ''))
  return k ? { key: k } : { error: `${name} must be 32 hex digits` }
}

function decodeLorawan(frame: RawFrame, options?: DecodeOptions): DecodeResult {
  const bytes = frame.bytes
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return reject('truncated', 'empty PHYPayload')
  const appKey = key(options, 'appkey')
  const nwkSKey = key(options, 'nwkskey')
  const appSKey = key(options, 'appskey')
  for (const k of [appKey, nwkSKey, appSKey]) if (k.error) return reject('malformed', k.error)
  const p = parsePhyPayload(bytes)
  if (!p.ok) return reject(p.code === 'too-short' || p.code === 'empty' ? 'truncated' : p.code === 'unsupported-major' || p.code === 'rfu-mtype' ? 'unsupported' : 'malformed', `${p.code}: ${p.reason}`)
  const f = p.frame
  const meta: Meta = { major: f.major }
  switch (f.kind) {
    case 'proprietary':
      meta['mtype'] = 'proprietary'
      meta['payload'] = bytesToHex(f.payload)
      break
    case 'join-request':
      meta['mtype'] = 'join-request'
      meta['join_eui'] = f.joinEui
      meta['dev_eui'] = f.devEui
      meta['dev_nonce'] = f.devNonce
      meta['mic'] = bytesToHex(f.mic)
      if (appKey.key) meta['mic_valid'] = verifyJoinRequestMic(f, appKey.key)
      break
    case 'join-accept': {
      meta['mtype'] = 'join-accept'
      meta['cflist_present'] = f.hasCfList
      if (!appKey.key) break
      const o = openJoinAccept(f.bytes, appKey.key)
      if (!o.ok) return reject('malformed', o.reason)
      meta['mic_valid'] = o.micValid
      meta['join_nonce'] = o.fields.joinNonce
      meta['net_id'] = o.fields.netId.toString(16).padStart(6, '0')
      meta['dev_addr'] = o.fields.devAddr.toString(16).padStart(8, '0')
      meta['rx1_dr_offset'] = o.fields.rx1DrOffset
      meta['rx2_data_rate'] = o.fields.rx2DataRate
      meta['rx_delay_s'] = o.fields.rxDelayS
      if (o.fields.cfList) meta['cflist'] = bytesToHex(o.fields.cfList)
      break
    }
    case 'data': {
      meta['mtype'] = f.mtype
      meta['direction'] = f.direction
      meta['dev_addr'] = f.devAddr.toString(16).padStart(8, '0')
      meta['adr'] = f.fctrl.adr
      meta['ack'] = f.fctrl.ack
      meta[f.direction === 'up' ? 'adr_ack_req' : 'f_pending'] = f.direction === 'up' ? f.fctrl.adrAckReq : f.fctrl.fPending
      meta['fcnt16'] = f.fcnt16
      if (f.fopts.length > 0) meta['fopts'] = bytesToHex(f.fopts)
      if (f.fport !== null) meta['fport'] = f.fport
      meta['frm_payload'] = bytesToHex(f.frmPayload)
      meta['mic'] = bytesToHex(f.mic)
      let fcnt32 = f.fcnt16
      const hint = options?.['fcnt']
      if (hint !== undefined && hint !== '') {
        const n = Number(hint)
        if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) return reject('malformed', 'fcnt must be an integer 0..4294967295')
        fcnt32 = ((n & 0xffff0000) | f.fcnt16) >>> 0
      }
      meta['fcnt'] = fcnt32
      if (nwkSKey.key) meta['mic_valid'] = verifyDataFrameMic(f, nwkSKey.key, fcnt32)
      const payloadKey = f.fport === 0 ? nwkSKey.key : appSKey.key
      if (f.fport !== null && payloadKey) {
        meta['payload'] = bytesToHex(decryptFrmPayload(f, { nwkSKey: (nwkSKey.key ?? payloadKey), appSKey: (appSKey.key ?? payloadKey) }, fcnt32))
      }
      break
    }
  }
  return { ok: true, metrics: [], meta }
}

export const lorawanDecoder: Decoder = {
  id: 'lorawan',
  description: 'LoRaWAN 1.0.x PHYPayload: frame fields, MIC check and decrypted FRMPayload with the keys given (appkey, nwkskey, appskey, fcnt)',
  match: { transport: 'lorawan' },
  input: 'bytes',
  decode: decodeLorawan,
}
