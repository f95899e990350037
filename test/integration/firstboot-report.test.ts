// The first-boot report on the status page: shown in full once, to the first
// request with the API token, then marked shown without its passwords.

import t from 'tap'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FirstbootReport } from '../../gateway/src/service/firstboot.ts'
import { chromium } from 'playwright-core'
import { startGateway } from '../helpers/gateway-process.ts'

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'

function sampleReport(): FirstbootReport {
  return {
    version: 1,
    appliedAt: '2026-11-24T18:00:00.000Z',
    hostname: 'hive-7',
    gatewayAddress: '0x0000000000000000000000000000000000000001',
    keyRestored: false,
    urls: { statusPage: 'http://hive-7.local:8080/', api: 'http://hive-7.local:8080/api/v1/status', nodeRed: 'http://hive-7.local:1880/', ssh: 'ssh admin@hive-7.local' },
    wifi: null,
    generatedPasswords: { nodeRed: 'generated-pw-4711' },
    applied: ['gateway config', 'node-red password (generated)'],
    apiTokenFile: '/var/lib/fieldproof/api-token',
  }
}

t.test('shown once to the first authenticated request', async (t) => {
  const dir = t.testdir()
  const stateDir = join(dir, 'state')
  mkdirSync(stateDir, { mode: 0o700 })
  const report = sampleReport()
  const file = join(stateDir, 'firstboot-report.json')
  writeFileSync(file, JSON.stringify(report), { mode: 0o600 })
  const gw = await startGateway({ stateDir })
  t.teardown(() => gw.stop())
  const status = async () => ((await (await fetch(`${gw.url}/api/v1/status`)).json()) as { firstboot: string }).firstboot

  t.equal(await status(), 'unseen')
  const page = await (await fetch(`${gw.url}/`)).text()
  t.match(page, /id="fb"/, 'the status page has the first-boot section')

  const anon = await fetch(`${gw.url}/api/v1/firstboot-report`)
  t.equal(anon.status, 401, 'not without the token')
  const wrong = await fetch(`${gw.url}/api/v1/firstboot-report`, { headers: { authorization: 'Bearer nope' } })
  t.equal(wrong.status, 401)
  t.equal(await status(), 'unseen', 'refused requests do not use up the one showing')

  const first = await fetch(`${gw.url}/api/v1/firstboot-report`, { headers: { authorization: `Bearer ${gw.token}` } })
  t.equal(first.status, 200)
  t.equal(first.headers.get('cache-control'), 'no-store')
  const b1 = (await first.json()) as { first: boolean; report: FirstbootReport }
  t.equal(b1.first, true)
  t.equal(b1.report.generatedPasswords.nodeRed, 'generated-pw-4711')
  t.equal(b1.report.gatewayAddress, report.gatewayAddress)

  const onDisk = readFileSync(file, 'utf8')
  t.notOk(onDisk.includes('generated-pw-4711'), 'the password is gone from the state directory once shown')
  t.match(JSON.parse(onDisk), { shownAt: /^\d{4}-/ })
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.equal(await status(), 'shown')

  const second = await fetch(`${gw.url}/api/v1/firstboot-report`, { headers: { authorization: `Bearer ${gw.token}` } })
  const b2 = (await second.json()) as { first: boolean; report: FirstbootReport }
  t.equal(b2.first, false)
  t.same(b2.report.generatedPasswords, {})
  t.equal(b2.report.hostname, 'hive-7')
})

t.test('no report: none, and 404 with the token', async (t) => {
  const gw = await startGateway({ stateDir: join(t.testdir(), 'state') })
  t.teardown(() => gw.stop())
  t.equal(((await (await fetch(`${gw.url}/api/v1/status`)).json()) as { firstboot: string }).firstboot, 'none')
  const r = await fetch(`${gw.url}/api/v1/firstboot-report`, { headers: { authorization: `Bearer ${gw.token}` } })
  t.equal(r.status, 404)
})

t.test('the status page shows it once in Chromium', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium not found at ${CHROMIUM}: install Debian's chromium (.ci/run does)`)
    return
  }
  const stateDir = join(t.testdir(), 'state')
  mkdirSync(stateDir, { mode: 0o700 })
  writeFileSync(join(stateDir, 'firstboot-report.json'), JSON.stringify(sampleReport()), { mode: 0o600 })
  const gw = await startGateway({ stateDir })
  t.teardown(() => gw.stop())
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(gw.url + '/')
  await page.waitForSelector('#fb:not([hidden])', { timeout: 20_000 })
  await page.fill('#fbtoken', 'wrong')
  await page.click('#fbform button')
  await page.waitForSelector('#fberr:has-text("not the API token")')
  await page.fill('#fbtoken', gw.token)
  await page.click('#fbform button')
  await page.waitForSelector('#fbdl')
  const shown = (await page.textContent('#fbdl')) ?? ''
  t.match(shown, 'generated-pw-4711', 'the generated password is shown')
  t.match(shown, '0x0000000000000000000000000000000000000001')
  t.match(shown, 'http://hive-7.local:1880/')
  await page.reload()
  // #addr and the box's visibility are set in the same synchronous step.
  await page.waitForSelector('#addr:has-text("0x")')
  t.equal(await page.isHidden('#fb'), true, 'after a reload the box is gone: it was shown once')
  t.same(errors, [], 'no script errors')
})
