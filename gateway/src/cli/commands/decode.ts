import { DECODERS, findDecoder } from '../../decoders/index.ts'
import { DECODER_VECTORS } from '../../decoders/vectors.ts'
import { safeDecode, type DecodeOptions, type RawFrame } from '../../core/decoder.ts'
import { jsonText, str, UsageError, type Command } from '../cli.ts'

/** Bytes from hex (with or without 0x, spaces and colons allowed) or base64. */
export function parseBytes(input: string): Uint8Array | undefined {
  const compact = input.trim().replace(/^0x/i, '').replace(/[\s:]/g, '')
  if (compact.length % 2 === 0 && /^[0-9a-fA-F]*$/.test(compact)) return new Uint8Array(Buffer.from(compact, 'hex'))
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(input.trim())) return new Uint8Array(Buffer.from(input.trim(), input.includes('-') || input.includes('_') ? 'base64url' : 'base64'))
  return undefined
}

export const decodeCommand: Command = {
  name: 'decode',
  summary: 'run a payload decoder on bytes or JSON text',
  options: {
    list: { type: 'boolean' },
    json: { type: 'boolean' },
    topic: { type: 'string' },
    mac: { type: 'string' },
    'service-uuid': { type: 'string' },
    'manufacturer-id': { type: 'string' },
    fport: { type: 'string' },
    option: { type: 'string', multiple: true, short: 'o' },
    format: { type: 'string' },
    bindkey: { type: 'string' },
    appkey: { type: 'string' },
    nwkskey: { type: 'string' },
    appskey: { type: 'string' },
    fcnt: { type: 'string' },
  },
  help: `Usage: fieldproof decode --list
       fieldproof decode DECODER-ID INPUT [--topic T] [--mac M] [--fport N] [-o key=value ...]

Run one registered decoder and print its result as JSON: the metrics with
their units, or the reason it rejected the input. INPUT is hex (0x optional)
or base64 for byte formats, or JSON text for MQTT formats (with --topic).

Options:
      --list               name every registered decoder, its transport and input
      --topic T            MQTT topic the payload arrived on
      --mac M              BLE MAC address (aa:bb:cc:dd:ee:ff)
      --service-uuid U     BLE service data UUID (e.g. fcd2)
      --manufacturer-id N  BLE company id (e.g. 0x0499)
      --fport N            LoRaWAN FPort
  -o, --option key=value   decoder option (e.g. -o bindkey=231d39c1d7cc1ab1aee224cd096db932)
      --bindkey K          same as -o bindkey=K (BTHome, MiBeacon, pvvx encryption key)
      --format F           same as -o format=F (decode ble: the data decoder to use)
      --appkey K           same as -o appkey=K (decode lorawan: join MIC, join-accept)
      --nwkskey K          same as -o nwkskey=K (decode lorawan: data MIC, FPort 0)
      --appskey K          same as -o appskey=K (decode lorawan: FPort > 0 payload)
      --fcnt N             same as -o fcnt=N (decode lorawan: 32-bit frame counter)
      --json               (the output is always JSON; accepted for symmetry)

Exit status: 0 decoded, 1 rejected, 2 usage error.
`,
  run(args, io) {
    if (args.values['list']) {
      const rows = DECODER_VECTORS.map(({ decoder: d, vectors }) => ({ id: d.id, transport: d.match.transport, input: d.input, match: d.match, vectors: vectors.length, description: d.description }))
      io.out(jsonText(rows))
      return 0
    }
    const [id, input] = args.positionals
    if (!id) throw new UsageError('DECODER-ID is required (fieldproof decode --list names them)')
    const decoder = findDecoder(id)
    if (!decoder) throw new UsageError(`no decoder "${id}"; registered: ${DECODERS.map((d) => d.decoder.id).join(', ') || '(none)'}`)
    if (input === undefined) throw new UsageError('INPUT is required')
    const bytes = decoder.input === 'json' ? new Uint8Array(Buffer.from(input, 'utf8')) : parseBytes(input)
    if (!bytes) throw new UsageError('INPUT must be hex or base64 bytes')
    const options: Record<string, string> = {}
    for (const kv of (args.values['option'] as string[] | undefined) ?? []) {
      const eq = kv.indexOf('=')
      if (eq <= 0) throw new UsageError(`-o ${kv}: expected key=value`)
      options[kv.slice(0, eq)] = kv.slice(eq + 1)
    }
    for (const k of ['format', 'bindkey', 'appkey', 'nwkskey', 'appskey', 'fcnt'] as const) {
      const v = str(args.values[k])
      if (v !== undefined) options[k] = v
    }
    const fport = str(args.values['fport'])
    const mid = str(args.values['manufacturer-id'])
    const mac = str(args.values['mac'])
    const frame: RawFrame = {
      transport: decoder.match.transport,
      bytes,
      ...(str(args.values['topic']) !== undefined ? { topic: str(args.values['topic']) as string } : {}),
      ...(mac !== undefined ? { mac: mac.toLowerCase() } : {}),
      ...(str(args.values['service-uuid']) !== undefined ? { serviceDataUuid: (str(args.values['service-uuid']) as string).toLowerCase() } : decoder.match.serviceDataUuid ? { serviceDataUuid: decoder.match.serviceDataUuid } : {}),
      ...(mid !== undefined ? { manufacturerId: Number(mid) } : decoder.match.manufacturerId !== undefined ? { manufacturerId: decoder.match.manufacturerId } : {}),
      ...(fport !== undefined ? { fPort: Number(fport) } : {}),
    }
    if (mac !== undefined && options['mac'] === undefined) options['mac'] = mac.toLowerCase()
    const result = safeDecode(decoder, frame, options as DecodeOptions)
    io.out(jsonText({ decoder: decoder.id, ...result }))
    return result.ok ? 0 : 1
  },
}
