// Published Cayenne LPP vectors, each with its source.
//   DOCS  = myDevicesIoT/cayenne-docs docs/LORA.md @ eb1decb200f729b5e12fd8e1fd5308318d3811fe, "Examples"
//   AUNIT = ElectronicCats/CayenneLPP test/aunit/main.cpp @ 0483633067836a970e34e56fd7bc221f9c80f15a
//           (EncoderTest expected bytes and the values passed to the encoder)
//   CATCH = ElectronicCats/CayenneLPP test/catch2/LppMessageTest.cpp @ 1ce31861078f5d12157eb36f1c7b65e88d555b4b
//           (values passed to add*(); bytes laid out per the library's src/CayenneLPP.h sizes and multipliers)
//   TTS   = TheThingsIndustries/lorawan-stack-docs doc/content/integrations/payload-formatters/cayenne.md
// Expected metric names follow this decoder's `_ch<channel>` rule (cayenne-lpp.ts header).

import type { DecoderVector } from '../core/decoder.ts'
import { STANDARD_GRAVITY as G } from './cayenne-lpp.ts'

const DOCS = 'myDevicesIoT/cayenne-docs docs/LORA.md @ eb1decb2, Examples'
const AUNIT = 'ElectronicCats/CayenneLPP test/aunit/main.cpp @ 04836330'
const CATCH = 'ElectronicCats/CayenneLPP test/catch2/LppMessageTest.cpp @ 1ce31861'

export const CAYENNE_LPP_VECTORS: readonly DecoderVector[] = [
  {
    name: 'two temperature sensors',
    source: `${DOCS} "Device with 2 temperature sensors"; also TheThingsIndustries/lorawan-stack-docs payload-formatters/cayenne.md`,
    input: '03670110056700ff',
    expect: {
      ok: true,
      metrics: [
        { name: 'temperature_c_ch3', unit: 'Cel', value: 27.2 },
        { name: 'temperature_c_ch5', unit: 'Cel', value: 25.5 },
      ],
      meta: { objects: 2 },
    },
  },
  {
    name: 'negative temperature (frame N)',
    source: `${DOCS} "Device with temperature and acceleration sensors", frame N`,
    input: '0167ffd7',
    expect: { ok: true, metrics: [{ name: 'temperature_c_ch1', unit: 'Cel', value: -4.1 }] },
  },
  {
    name: 'accelerometer (frame N+1)',
    source: `${DOCS} "Device with temperature and acceleration sensors", frame N+1 (1.234 g, -1.234 g, 0 g)`,
    input: '067104d2fb2e0000',
    expect: {
      ok: true,
      metrics: [
        { name: 'acceleration_x_ms2_ch6', unit: 'm/s2', value: 1.234 * G },
        { name: 'acceleration_y_ms2_ch6', unit: 'm/s2', value: -1.234 * G },
        { name: 'acceleration_z_ms2_ch6', unit: 'm/s2', value: 0 },
      ],
    },
  },
  {
    name: 'GPS',
    source: `${DOCS} "Device with GPS" (42.3519, -87.9094, 10 m)`,
    input: '018806765ff2960a0003e8',
    expect: {
      ok: true,
      metrics: [
        { name: 'latitude_ch1', unit: 'lat', value: 42.3519 },
        { name: 'longitude_ch1', unit: 'lon', value: -87.9094 },
        { name: 'altitude_m_ch1', unit: 'm', value: 10 },
      ],
    },
  },
  {
    name: 'temperature and humidity',
    source: `${AUNIT} EncoderTest Direct / Multichannel (27.2 °C ch3, 54 % ch2)`,
    input: '0367011002686c',
    expect: {
      ok: true,
      metrics: [
        { name: 'temperature_c_ch3', unit: 'Cel', value: 27.2 },
        { name: 'humidity_pct_ch2', unit: '%', value: 54 },
      ],
    },
  },
  {
    name: 'power at its limit',
    source: `${AUNIT} EncoderTest Limit (addPower(1, 0xFFFF))`,
    input: '0180ffff',
    expect: { ok: true, metrics: [{ name: 'power_w_ch1', unit: 'W', value: 65535 }] },
  },
  {
    name: 'negative temperature',
    source: `${AUNIT} EncoderTest Negative_Temperature and DecoderTest Negative_Temperature (-4.7)`,
    input: '0567ffd1',
    expect: { ok: true, metrics: [{ name: 'temperature_c_ch5', unit: 'Cel', value: -4.7 }] },
  },
  {
    name: 'generic sensor',
    source: `${AUNIT} EncoderTest Generic_Sensor (998)`,
    input: '0164000003e6',
    expect: { ok: true, metrics: [{ name: 'generic_value_ch1', unit: '1', value: 998 }] },
  },
  {
    name: 'voltage',
    source: `${AUNIT} EncoderTest Voltage and DecoderTest Voltage (224.56 V)`,
    input: '037457b8',
    expect: { ok: true, metrics: [{ name: 'voltage_v_ch3', unit: 'V', value: 224.56 }] },
  },
  {
    name: 'current',
    source: `${AUNIT} EncoderTest Current (0.237 A)`,
    input: '017500ed',
    expect: { ok: true, metrics: [{ name: 'current_a_ch1', unit: 'A', value: 0.237 }] },
  },
  {
    name: 'frequency',
    source: `${AUNIT} EncoderTest Frequency and DecoderTest Frequency (868100000 Hz)`,
    input: '017633be27a0',
    expect: { ok: true, metrics: [{ name: 'frequency_hz_ch1', unit: 'Hz', value: 868100000 }] },
  },
  {
    name: 'altitude',
    source: `${AUNIT} EncoderTest Altitude (-17 m)`,
    input: '0579ffef',
    expect: { ok: true, metrics: [{ name: 'altitude_m_ch5', unit: 'm', value: -17 }] },
  },
  {
    name: 'power',
    source: `${AUNIT} EncoderTest Power (3450 W)`,
    input: '05800d7a',
    expect: { ok: true, metrics: [{ name: 'power_w_ch5', unit: 'W', value: 3450 }] },
  },
  {
    name: 'distance',
    source: `${AUNIT} EncoderTest Distance and DecoderTest Distance (0.034 m)`,
    input: '018200000022',
    expect: { ok: true, metrics: [{ name: 'distance_m_ch1', unit: 'm', value: 0.034 }] },
  },
  {
    name: 'energy',
    source: `${AUNIT} EncoderTest Energy (7953.2 kWh)`,
    input: '018300795b30',
    expect: { ok: true, metrics: [{ name: 'energy_kwh_ch1', unit: 'kWh', value: 7953.2 }] },
  },
  {
    name: 'direction',
    source: `${AUNIT} EncoderTest Direction (256°)`,
    input: '01840100',
    expect: { ok: true, metrics: [{ name: 'direction_deg_ch1', unit: 'deg', value: 256 }] },
  },
  {
    name: 'GPS as the library encodes it',
    source: `${AUNIT} EncoderTest GPS and DecoderTest GPS (addGPS(1, 42.3519, -87.9094, 10): float truncation gives 423518)`,
    input: '018806765ef2960a0003e8',
    expect: {
      ok: true,
      metrics: [
        { name: 'latitude_ch1', unit: 'lat', value: 42.3518 },
        { name: 'longitude_ch1', unit: 'lon', value: -87.9094 },
        { name: 'altitude_m_ch1', unit: 'm', value: 10 },
      ],
    },
  },
  {
    name: 'switch',
    source: `${AUNIT} EncoderTest Switch (1)`,
    input: '058e01',
    expect: { ok: true, metrics: [{ name: 'state_ch5', unit: '1', value: 1 }] },
  },
  {
    name: 'types A-C',
    source: `${CATCH} "parameters A-C are decoded": accelerometer(0;1,2,3) altitude(0;4) analog in(0;5) out(0;6) barometer(1;7) colour(1;8,9,10) concentration(1;11) current(1;12)`,
    input: '007103e807d00bb8' + '00790004' + '000201f4' + '00030258' + '01730046' + '018708090a' + '017d000b' + '01752ee0',
    expect: {
      ok: true,
      metrics: [
        { name: 'acceleration_x_ms2_ch0', unit: 'm/s2', value: 1 * G },
        { name: 'acceleration_y_ms2_ch0', unit: 'm/s2', value: 2 * G },
        { name: 'acceleration_z_ms2_ch0', unit: 'm/s2', value: 3 * G },
        { name: 'altitude_m_ch0', unit: 'm', value: 4 },
        { name: 'analog_input_ch0', unit: '1', value: 5 },
        { name: 'analog_output_ch0', unit: '1', value: 6 },
        { name: 'pressure_hpa_ch1', unit: 'hPa', value: 7 },
        { name: 'colour_red_ch1', unit: '1', value: 8 },
        { name: 'colour_green_ch1', unit: '1', value: 9 },
        { name: 'colour_blue_ch1', unit: '1', value: 10 },
        { name: 'concentration_ppm_ch1', unit: 'ppm', value: 11 },
        { name: 'current_a_ch1', unit: 'A', value: 12 },
      ],
      meta: { objects: 8 },
    },
  },
  {
    name: 'types D-O',
    source: `${CATCH} "parameters D-O are decoded": digital in(2;13) out(2;14) direction(2;15) distance(2;16) energy(3;17) frequency(4;18) generic(5;19) GPS(5;20,21,22) gyrometer(5;23,24,25) luminosity(6;26) switch(7;27)`,
    input:
      '02000d' + '02010e' + '0284000f' + '028200003e80' + '038300004268' + '047600000012' + '056400000013' +
      '0588030d40033450000898' + '058608fc096009c4' + '0665001a' + '078e1b',
    expect: {
      ok: true,
      metrics: [
        { name: 'digital_input_ch2', unit: '1', value: 13 },
        { name: 'digital_output_ch2', unit: '1', value: 14 },
        { name: 'direction_deg_ch2', unit: 'deg', value: 15 },
        { name: 'distance_m_ch2', unit: 'm', value: 16 },
        { name: 'energy_kwh_ch3', unit: 'kWh', value: 17 },
        { name: 'frequency_hz_ch4', unit: 'Hz', value: 18 },
        { name: 'generic_value_ch5', unit: '1', value: 19 },
        { name: 'latitude_ch5', unit: 'lat', value: 20 },
        { name: 'longitude_ch5', unit: 'lon', value: 21 },
        { name: 'altitude_m_ch5', unit: 'm', value: 22 },
        { name: 'gyroscope_x_dps_ch5', unit: 'deg/s', value: 23 },
        { name: 'gyroscope_y_dps_ch5', unit: 'deg/s', value: 24 },
        { name: 'gyroscope_z_dps_ch5', unit: 'deg/s', value: 25 },
        { name: 'illuminance_lx_ch6', unit: 'lx', value: 26 },
        { name: 'state_ch7', unit: '1', value: 27 },
      ],
      meta: { objects: 11 },
    },
  },
  {
    name: 'types P-V',
    source: `${CATCH} "parameters P-V are decoded": percentage(8;28) power(8;29) presence(8;30) humidity(9;31) temperature(10;32) unix time(11;33) voltage(12;34)`,
    input: '08781c' + '0880001d' + '08661e' + '09683e' + '0a670140' + '0b8500000021' + '0c740d48',
    expect: {
      ok: true,
      metrics: [
        { name: 'percentage_pct_ch8', unit: '%', value: 28 },
        { name: 'power_w_ch8', unit: 'W', value: 29 },
        { name: 'occupancy_detected_ch8', unit: '1', value: 30 },
        { name: 'humidity_pct_ch9', unit: '%', value: 31 },
        { name: 'temperature_c_ch10', unit: 'Cel', value: 32 },
        { name: 'unix_time_s_ch11', unit: 's', value: 33 },
        { name: 'voltage_v_ch12', unit: 'V', value: 34 },
      ],
      meta: { objects: 7 },
    },
  },
  { name: 'empty payload', source: 'LORA.md format: at least one channel/type/value', input: '', expect: { ok: false, code: 'truncated' } },
  { name: 'value cut off', source: `${DOCS} first example with its last byte removed`, input: '03670110056700', expect: { ok: false, code: 'truncated' } },
  { name: 'header cut off', source: 'LORA.md format: channel and type are one byte each', input: '0367011005', expect: { ok: false, code: 'truncated' } },
  { name: 'unknown type', source: 'LORA.md type table: 0xFF is not a type', input: '01ff00', expect: { ok: false, code: 'unsupported' } },
  {
    name: 'same object twice on one channel',
    source: 'this decoder: metric names in a reading are unique',
    input: '0367011003670110',
    expect: { ok: false, code: 'malformed' },
  },
]
