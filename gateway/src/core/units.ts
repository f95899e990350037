// The one registry of units and well-known metric names. Every metric a
// reading carries has a unit from UNITS; a well-known metric name fixes its
// unit (temperature_c is always Cel). Unit ids are short ASCII strings,
// SenML-style (RFC 8428 §12.1) where SenML has one, so they encode stably.

export interface UnitInfo {
  /** Human symbol for display. */
  readonly symbol: string
  readonly description: string
}

export const UNITS = {
  Cel: { symbol: '°C', description: 'degrees Celsius' },
  '%': { symbol: '%', description: 'percent (relative humidity, battery, moisture, ...)' },
  hPa: { symbol: 'hPa', description: 'hectopascal' },
  Pa: { symbol: 'Pa', description: 'pascal' },
  ppm: { symbol: 'ppm', description: 'parts per million' },
  ppb: { symbol: 'ppb', description: 'parts per billion' },
  'ug/m3': { symbol: 'µg/m³', description: 'micrograms per cubic metre' },
  'g/m3': { symbol: 'g/m³', description: 'grams per cubic metre' },
  lx: { symbol: 'lx', description: 'lux' },
  V: { symbol: 'V', description: 'volt' },
  mV: { symbol: 'mV', description: 'millivolt' },
  A: { symbol: 'A', description: 'ampere' },
  mA: { symbol: 'mA', description: 'milliampere' },
  W: { symbol: 'W', description: 'watt' },
  VA: { symbol: 'VA', description: 'volt-ampere (apparent power)' },
  var: { symbol: 'var', description: 'volt-ampere reactive' },
  Wh: { symbol: 'Wh', description: 'watt-hour' },
  kWh: { symbol: 'kWh', description: 'kilowatt-hour' },
  Hz: { symbol: 'Hz', description: 'hertz' },
  dBm: { symbol: 'dBm', description: 'decibel-milliwatts' },
  dB: { symbol: 'dB', description: 'decibel' },
  'm/s': { symbol: 'm/s', description: 'metres per second' },
  'km/h': { symbol: 'km/h', description: 'kilometres per hour' },
  'm/s2': { symbol: 'm/s²', description: 'metres per second squared' },
  'deg/s': { symbol: '°/s', description: 'degrees per second' },
  deg: { symbol: '°', description: 'degrees (angle, direction)' },
  mm: { symbol: 'mm', description: 'millimetre' },
  m: { symbol: 'm', description: 'metre' },
  'mm/h': { symbol: 'mm/h', description: 'millimetres per hour' },
  s: { symbol: 's', description: 'second' },
  ms: { symbol: 'ms', description: 'millisecond' },
  m3: { symbol: 'm³', description: 'cubic metre' },
  'm3/h': { symbol: 'm³/h', description: 'cubic metres per hour' },
  L: { symbol: 'L', description: 'litre' },
  'L/min': { symbol: 'L/min', description: 'litres per minute' },
  mL: { symbol: 'mL', description: 'millilitre' },
  kg: { symbol: 'kg', description: 'kilogram' },
  lb: { symbol: 'lb', description: 'pound' },
  'uS/cm': { symbol: 'µS/cm', description: 'microsiemens per centimetre' },
  lat: { symbol: '°N', description: 'latitude, decimal degrees (WGS84)' },
  lon: { symbol: '°E', description: 'longitude, decimal degrees (WGS84)' },
  count: { symbol: '', description: 'a count of events or pulses' },
  '1': { symbol: '', description: 'dimensionless (index, ratio, state 0/1)' },
} as const satisfies Record<string, UnitInfo>

export type UnitId = keyof typeof UNITS

export function isUnit(u: string): u is UnitId {
  return Object.hasOwn(UNITS, u)
}

export interface MetricInfo {
  readonly unit: UnitId
  readonly description: string
}

/**
 * Well-known metric names. Decoders use these names; a name not listed here
 * is accepted when it matches METRIC_NAME_RE and carries a unit from UNITS.
 * Repeated measurements of one kind append `_2`, `_3`, ... to the name
 * (temperature_c, temperature_c_2).
 */
export const METRICS = {
  temperature_c: { unit: 'Cel', description: 'air or probe temperature' },
  dewpoint_c: { unit: 'Cel', description: 'dew point' },
  humidity_pct: { unit: '%', description: 'relative humidity' },
  moisture_pct: { unit: '%', description: 'soil or material moisture' },
  pressure_hpa: { unit: 'hPa', description: 'barometric pressure' },
  co2_ppm: { unit: 'ppm', description: 'carbon dioxide concentration' },
  tvoc_ppb: { unit: 'ppb', description: 'total volatile organic compounds' },
  voc_ugm3: { unit: 'ug/m3', description: 'volatile organic compounds, mass concentration' },
  pm1_0_ugm3: { unit: 'ug/m3', description: 'particulate matter ≤ 1.0 µm' },
  pm2_5_ugm3: { unit: 'ug/m3', description: 'particulate matter ≤ 2.5 µm' },
  pm4_0_ugm3: { unit: 'ug/m3', description: 'particulate matter ≤ 4.0 µm' },
  pm10_ugm3: { unit: 'ug/m3', description: 'particulate matter ≤ 10 µm' },
  illuminance_lx: { unit: 'lx', description: 'illuminance' },
  uv_index: { unit: '1', description: 'UV index' },
  voltage_v: { unit: 'V', description: 'voltage (mains, supply)' },
  battery_v: { unit: 'V', description: 'battery voltage' },
  battery_pct: { unit: '%', description: 'battery level' },
  current_a: { unit: 'A', description: 'electric current' },
  power_w: { unit: 'W', description: 'active power' },
  apparent_power_va: { unit: 'VA', description: 'apparent power' },
  reactive_power_var: { unit: 'var', description: 'reactive power' },
  power_factor: { unit: '1', description: 'power factor' },
  energy_kwh: { unit: 'kWh', description: 'energy (cumulative)' },
  frequency_hz: { unit: 'Hz', description: 'frequency' },
  rssi_dbm: { unit: 'dBm', description: 'received signal strength reported by the device' },
  tx_power_dbm: { unit: 'dBm', description: 'transmit power' },
  wind_speed_ms: { unit: 'm/s', description: 'wind speed' },
  wind_direction_deg: { unit: 'deg', description: 'wind direction' },
  rain_mm: { unit: 'mm', description: 'precipitation (cumulative)' },
  rain_rate_mmh: { unit: 'mm/h', description: 'precipitation rate' },
  distance_mm: { unit: 'mm', description: 'distance' },
  distance_m: { unit: 'm', description: 'distance' },
  acceleration_ms2: { unit: 'm/s2', description: 'acceleration' },
  acceleration_x_ms2: { unit: 'm/s2', description: 'acceleration, X axis' },
  acceleration_y_ms2: { unit: 'm/s2', description: 'acceleration, Y axis' },
  acceleration_z_ms2: { unit: 'm/s2', description: 'acceleration, Z axis' },
  gyroscope_dps: { unit: 'deg/s', description: 'angular rate' },
  rotation_deg: { unit: 'deg', description: 'rotation' },
  speed_ms: { unit: 'm/s', description: 'speed' },
  duration_s: { unit: 's', description: 'duration' },
  mass_kg: { unit: 'kg', description: 'mass' },
  mass_lb: { unit: 'lb', description: 'mass' },
  volume_l: { unit: 'L', description: 'volume' },
  volume_ml: { unit: 'mL', description: 'volume' },
  volume_m3: { unit: 'm3', description: 'volume' },
  gas_m3: { unit: 'm3', description: 'gas consumption (cumulative)' },
  water_l: { unit: 'L', description: 'water consumption (cumulative)' },
  flow_rate_m3h: { unit: 'm3/h', description: 'volume flow rate' },
  flow_rate_lmin: { unit: 'L/min', description: 'volume flow rate' },
  conductivity_uscm: { unit: 'uS/cm', description: 'electrical conductivity' },
  count: { unit: 'count', description: 'a counter value' },
  pulses: { unit: 'count', description: 'pulses counted (cumulative)' },
  latitude: { unit: 'lat', description: 'GNSS latitude' },
  longitude: { unit: 'lon', description: 'GNSS longitude' },
  altitude_m: { unit: 'm', description: 'altitude' },
  state: { unit: '1', description: 'a binary state, 1 = on/open/detected' },
  // BLE binary sensors (BTHome v2 binary objects, MiBeacon): 1 = the condition in the name holds.
  battery_low: { unit: '1', description: 'battery low, 1 = low' },
  battery_charging: { unit: '1', description: 'battery charging, 1 = charging' },
  co_detected: { unit: '1', description: 'carbon monoxide, 1 = detected' },
  cold: { unit: '1', description: 'cold, 1 = cold' },
  connected: { unit: '1', description: 'connectivity, 1 = connected' },
  door_open: { unit: '1', description: 'door, 1 = open' },
  garage_door_open: { unit: '1', description: 'garage door, 1 = open' },
  gas_detected: { unit: '1', description: 'gas, 1 = detected' },
  hot: { unit: '1', description: 'heat, 1 = hot' },
  light_detected: { unit: '1', description: 'light, 1 = light detected' },
  unlocked: { unit: '1', description: 'lock, 1 = unlocked' },
  moisture_detected: { unit: '1', description: 'moisture, 1 = wet' },
  motion_detected: { unit: '1', description: 'motion, 1 = detected' },
  moving: { unit: '1', description: 'moving, 1 = moving' },
  occupancy_detected: { unit: '1', description: 'occupancy, 1 = detected' },
  opening: { unit: '1', description: 'opening, 1 = open' },
  plugged_in: { unit: '1', description: 'plug, 1 = plugged in' },
  power_on: { unit: '1', description: 'power, 1 = on' },
  present: { unit: '1', description: 'presence, 1 = home' },
  problem: { unit: '1', description: 'problem, 1 = problem' },
  running: { unit: '1', description: 'running, 1 = running' },
  safe: { unit: '1', description: 'safety, 1 = safe' },
  smoke_detected: { unit: '1', description: 'smoke, 1 = detected' },
  sound_detected: { unit: '1', description: 'sound, 1 = detected' },
  tampered: { unit: '1', description: 'tamper, 1 = tampered' },
  vibration_detected: { unit: '1', description: 'vibration, 1 = detected' },
  window_open: { unit: '1', description: 'window, 1 = open' },
  // BLE events as numeric codes (the event name goes in the decoder's meta).
  button_event: { unit: '1', description: 'button event code (BTHome 0x3A: 0 none, 1 press, 2 double, 3 triple, 4 long, 5 long double, 6 long triple, 128 hold)' },
  dimmer_event: { unit: '1', description: 'dimmer event code (BTHome 0x3C: 0 none, 1 rotate left, 2 rotate right)' },
  dimmer_steps: { unit: 'count', description: 'dimmer rotation steps of a dimmer event' },
  command_event: { unit: '1', description: 'command opcode (BTHome 0x3B: 0 off, 1 on, 2 toggle, 3 step up, 4 step down)' },
  channel: { unit: '1', description: 'channel number a reading or event refers to' },
  light_level: { unit: '1', description: 'light level, a device-defined dimensionless level' },
  direction_deg: { unit: 'deg', description: 'direction (compass bearing)' },
  rotational_speed_hz: { unit: 'Hz', description: 'rotational speed in revolutions per second (rpm / 60)' },
  volume_storage_l: { unit: 'L', description: 'volume held in storage (tank level)' },
  voc_index: { unit: '1', description: 'VOC index (Sensirion-style, 1..500, 100 = average)' },
  nox_index: { unit: '1', description: 'NOx index (Sensirion-style, 1..500, 1 = baseline)' },
  formaldehyde_ugm3: { unit: 'ug/m3', description: 'formaldehyde concentration' },
  // Cayenne LPP (LoRaWAN payloads): IPSO-style objects without a better-known name.
  digital_input: { unit: '1', description: 'digital input level (Cayenne LPP type 0)' },
  digital_output: { unit: '1', description: 'digital output level (Cayenne LPP type 1)' },
  analog_input: { unit: '1', description: 'analog input, device-defined scale (Cayenne LPP type 2)' },
  analog_output: { unit: '1', description: 'analog output, device-defined scale (Cayenne LPP type 3)' },
  generic_value: { unit: '1', description: 'generic sensor value, device-defined meaning (Cayenne LPP type 100)' },
  gyroscope_x_dps: { unit: 'deg/s', description: 'angular rate, X axis' },
  gyroscope_y_dps: { unit: 'deg/s', description: 'angular rate, Y axis' },
  gyroscope_z_dps: { unit: 'deg/s', description: 'angular rate, Z axis' },
  percentage_pct: { unit: '%', description: 'a percentage of a device-defined quantity' },
  concentration_ppm: { unit: 'ppm', description: 'gas concentration, device-defined gas' },
  unix_time_s: { unit: 's', description: 'a timestamp reported by the device, seconds since the Unix epoch' },
  colour_red: { unit: '1', description: 'colour, red component 0..255' },
  colour_green: { unit: '1', description: 'colour, green component 0..255' },
  colour_blue: { unit: '1', description: 'colour, blue component 0..255' },
} as const satisfies Record<string, MetricInfo>

export type MetricName = keyof typeof METRICS

/** Metric names: lowercase snake case, 1-64 characters. */
export const METRIC_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/

export function metricInfo(name: string): MetricInfo | undefined {
  if (Object.hasOwn(METRICS, name)) return METRICS[name as MetricName]
  // Repeats of a well-known metric: temperature_c_2 has temperature_c's unit.
  const m = /^(.*)_(\d{1,2})$/.exec(name)
  if (m?.[1] && Object.hasOwn(METRICS, m[1])) return METRICS[m[1] as MetricName]
  return undefined
}

export type MetricCheck = { ok: true; unit: UnitId } | { ok: false; reason: string }

/**
 * Check a metric name and unit against the registry. `unit` may be omitted
 * for a well-known name; for other names it is required.
 */
export function checkMetric(name: string, unit: string | undefined, value: number): MetricCheck {
  if (!METRIC_NAME_RE.test(name)) return { ok: false, reason: `metric name "${name.slice(0, 80)}" must match ${METRIC_NAME_RE.source}` }
  if (typeof value !== 'number' || !Number.isFinite(value)) return { ok: false, reason: `metric ${name}: value must be a finite number` }
  const known = metricInfo(name)
  if (known) {
    if (unit !== undefined && unit !== known.unit) {
      return { ok: false, reason: `metric ${name}: unit must be "${known.unit}", got "${String(unit).slice(0, 40)}"` }
    }
    return { ok: true, unit: known.unit }
  }
  if (unit === undefined) return { ok: false, reason: `metric ${name}: not a well-known metric, so a unit is required` }
  if (!isUnit(unit)) return { ok: false, reason: `metric ${name}: unknown unit "${String(unit).slice(0, 40)}"` }
  return { ok: true, unit }
}
