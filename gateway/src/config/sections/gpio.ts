// [sources.gpio]: wired sensors on the Raspberry Pi header (docs/gpio.md):
// pulse counters (rain gauge, anemometer, water/gas/energy meter), digital
// contacts (door, float switch) and the status LED. Pins are BCM numbers;
// the sysfs number (chip base + BCM) is found at start (docs/gpio.md, "Pin numbers").

import { Type, type Static } from '@sinclair/typebox'

const table = (description: string) => ({ description, additionalProperties: false, default: {} }) as const

/** What an input measures; fixes its metrics (docs/gpio.md, "Inputs"). */
export const GPIO_INPUT_KINDS = ['rain', 'wind', 'energy', 'water', 'gas', 'pulse', 'contact'] as const
export type GpioInputKind = (typeof GPIO_INPUT_KINDS)[number]

/** What an output does. */
export const GPIO_OUTPUT_FUNCTIONS = ['status-led'] as const

/** Input and output names: they make the device id `gpio:<name>`. */
const GPIO_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$'

const pin = Type.Integer({
  description: 'BCM GPIO number (the "GPIO17" of the pinout, not the header pin number), 0 to 53.',
  minimum: 0,
  maximum: 53,
})

export const GpioInputSection = Type.Object(
  {
    name: Type.String({
      description: 'Name of the input; the readings come from device `gpio:<name>`.',
      pattern: GPIO_NAME_PATTERN,
      patternHint: 'use 1 to 63 lowercase letters, digits, "_" or "-", starting with a letter or digit',
    }),
    pin,
    kind: Type.Union(
      GPIO_INPUT_KINDS.map((k) => Type.Literal(k)),
      {
        description:
          'What is wired: "rain" (tipping bucket: rain_mm, rain_rate_mmh), "wind" (anemometer: wind_speed_ms), "energy" (S0 meter: energy_kwh, power_w), "water" (water_l, flow_rate_lmin), "gas" (gas_m3, flow_rate_m3h), "pulse" (pulses, frequency_hz), "contact" (door or float switch: a 0/1 state).',
      },
    ),
    factor: Type.Number({
      description:
        'Units per pulse: mm per bucket tip (0.2794 for the common 0.011 in bucket), kWh per pulse (0.001 for a 1000 imp/kWh meter), L or m³ per pulse; for "wind", m/s per pulse per second (0.6667 for 2.4 km/h per Hz). 0 means 1, or 1/pulses_per_unit when that is set. Not used by "pulse" and "contact".',
      default: 0,
      minimum: 0,
    }),
    pulses_per_unit: Type.Number({
      description: 'Pulses per unit, as printed on many meters ("1000 imp/kWh"); used when factor is 0.',
      default: 0,
      minimum: 0,
    }),
    offset: Type.Number({
      description: 'Added to the cumulative total, in the total metric\'s unit, e.g. the meter\'s reading when the input was installed.',
      default: 0,
    }),
    edge: Type.Union([Type.Literal('rising'), Type.Literal('falling')], {
      description: 'Which edge of the (active_low-adjusted) level counts as one pulse. Contacts report both edges.',
      default: 'rising',
    }),
    debounce_ms: Type.Integer({
      description:
        'A level change within this many ms of the last accepted change is a bounce and is dropped. Keep it below half the shortest pulse or gap (an anemometer at 100 km/h pulses every 24 ms).',
      default: 10,
      minimum: 0,
      maximum: 10_000,
    }),
    active_low: Type.Boolean({
      description: 'Invert the level (a switch to ground with a pull-up reads 1 when open): the kernel\'s active_low.',
      default: false,
    }),
    interval_seconds: Type.Integer({
      description: 'Seconds between two periodic readings: the cumulative total and the rate over the period; for a contact, the heartbeat.',
      default: 60,
      minimum: 1,
      maximum: 86_400,
    }),
    metric: Type.String({
      description: 'Contacts only: the metric of the 0/1 state, e.g. "door_open", "window_open", "moisture_detected" (float switch); any metric with unit "1".',
      default: 'state',
      pattern: '^[a-z][a-z0-9_]{0,63}$',
    }),
  },
  { description: 'One input.', additionalProperties: false },
)

export const GpioOutputSection = Type.Object(
  {
    name: Type.String({ description: 'Name of the output.', pattern: GPIO_NAME_PATTERN, default: 'status' }),
    pin,
    function: Type.Union(
      GPIO_OUTPUT_FUNCTIONS.map((f) => Type.Literal(f)),
      { description: 'What the output shows: "status-led" blinks the gateway state (codes in docs/gpio.md).', default: 'status-led' },
    ),
    active_low: Type.Boolean({ description: 'The LED lights when the pin is low (wired from 3.3 V to the pin).', default: false }),
  },
  { description: 'One output.', additionalProperties: false },
)

export const GpioSourceSection = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Use the GPIO inputs and outputs listed below (sysfs GPIO, /sys/class/gpio).', default: false }),
    mode: Type.Union([Type.Literal('interrupt'), Type.Literal('poll')], {
      description:
        'How input edges are seen: "interrupt" waits on the kernel\'s edge interrupt (epoll on the value file) and falls back to polling when the kernel refuses it; "poll" reads the value file every poll_ms.',
      default: 'interrupt',
    }),
    poll_ms: Type.Integer({
      description: 'Milliseconds between two reads of an input in poll mode; a pulse or gap shorter than this may be missed.',
      default: 5,
      minimum: 1,
      maximum: 1000,
    }),
    chip_base: Type.Integer({
      description:
        'sysfs number of BCM GPIO 0. -1 finds it by reading /sys/class/gpio/gpiochip*/label (pinctrl-bcm2835, pinctrl-bcm2711 or pinctrl-rp1) and base.',
      default: -1,
      minimum: -1,
      maximum: 65_535,
    }),
    inputs: Type.Array(GpioInputSection, {
      description: 'Inputs, one [[sources.gpio.inputs]] table each (name, pin, kind, ...). See docs/gpio.md for wiring and examples.',
      default: [],
    }),
    outputs: Type.Array(GpioOutputSection, {
      description: 'Outputs, one [[sources.gpio.outputs]] table each; today the status LED (pin, function = "status-led").',
      default: [],
    }),
  },
  table('Wired sensors and the status LED on the GPIO header. See docs/gpio.md.'),
)

export type GpioSourceConfig = Static<typeof GpioSourceSection>
export type GpioInputConfig = Static<typeof GpioInputSection>
export type GpioOutputConfig = Static<typeof GpioOutputSection>
