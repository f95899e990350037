// The gateway config the MQTT integration tests run: the embedded broker on
// 127.0.0.1:<port>, one signature worker, no simulated sensors, batches
// sealed every second.
export function mqttGatewayConfig(port: number): string {
  return `[batch]
max_readings = 1000
max_age_seconds = 1
[clock]
sync_check = "none"
[sources.sim]
enabled = false
[sources.mqtt]
enabled = true
listen = "127.0.0.1:${port}"
signature_workers = 1
`
}
