// The status page in a real headless Chromium (Debian's chromium, driven by
// playwright-core): it shows the gateway's address, counts and the latest
// simulated readings, and loads nothing from outside the gateway.

import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { startGateway } from '../helpers/gateway-process.ts'

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'

t.test('the status page renders live status in Chromium', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium not found at ${CHROMIUM}: install Debian's chromium (.ci/run does)`)
    return
  }
  const cwd = t.testdir()
  const g = await startGateway({ stateDir: '', cwd })
  t.teardown(() => g.kill())
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
  const outside: string[] = []
  page.on('request', (r) => {
    if (!r.url().startsWith(g.url)) outside.push(r.url())
  })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))

  await page.goto(g.url + '/')
  await page.waitForSelector('#latest tr:nth-child(2)', { timeout: 20_000 }) // a header row plus at least one reading
  t.equal(await page.textContent('#addr'), g.address, 'the gateway address is shown')
  t.match(await page.textContent('#name'), /simulation mode/)
  const latest = await page.$$eval('#latest tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent ?? ''))
  t.ok(latest.length > 0 && latest.every((d) => /^sim-(th|aq|power)-\d\d$/.test(d)), `latest readings listed (${latest.slice(0, 3).join(', ')})`)
  t.match(await page.textContent('#gw'), /unsynchronized|ntp/, 'the clock state is shown')
  t.match(await page.textContent('#sinks'), /no sinks configured|acked/, 'the sinks table is shown')
  await page.screenshot({ path: join(cwd, 'status-page.png'), fullPage: true })
  t.same(outside, [], 'nothing is loaded from outside the gateway')
  t.same(errors, [], 'no script errors')
})
