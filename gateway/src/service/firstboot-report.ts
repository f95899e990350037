// The first-boot report on the status page (docs/first-boot.md, "The
// report"): shown in full once, to the first request that carries the API
// bearer token; then marked shown, and the generated passwords are removed
// from <state_dir>/firstboot-report.json (the owner's copy stays in
// /home/admin/firstboot-report.txt).

import { readFileSync } from 'node:fs'
import type { Hex } from '../core/types.ts'
import { writeFileAtomic } from '../fs/atomic.ts'

/** The report's file name in the state directory. */
export const REPORT_FILE_NAME = 'firstboot-report.json'

/** What first boot did; kept as <state_dir>/firstboot-report.json and shown once on the status page. */
export interface FirstbootReport {
  readonly version: 1
  /** ISO time the file was applied. */
  readonly appliedAt: string
  readonly hostname: string
  /** The gateway's Ethereum address (restored or generated). */
  readonly gatewayAddress: Hex
  readonly keyRestored: boolean
  readonly urls: { readonly statusPage: string; readonly api: string; readonly nodeRed: string; readonly ssh: string }
  readonly wifi: { readonly ssid: string; readonly country: string } | null
  /** Passwords generated because the file named none (only until shown on the status page). */
  readonly generatedPasswords: { readonly nodeRed?: string }
  /** Settings applied, in order, e.g. "hostname", "wifi", "gateway config". */
  readonly applied: readonly string[]
  /** Where the API bearer token is (the gateway writes it on its first start). */
  readonly apiTokenFile: string
  /** Set when the status page has shown the report (the passwords are then removed from this file). */
  readonly shownAt?: string
}

/** Read a report, or undefined when absent or unreadable. */
export function readReport(path: string): FirstbootReport | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as FirstbootReport
    return r.version === 1 ? r : undefined
  } catch {
    return undefined
  }
}

/** What /api/v1/status says about the report. */
export type FirstbootReportState = 'none' | 'unseen' | 'shown'

/** The report file as the API serves it. */
export class FirstbootReportFile {
  readonly path: string

  constructor(path: string) {
    this.path = path
  }

  state(): FirstbootReportState {
    const r = readReport(this.path)
    return r === undefined ? 'none' : r.shownAt === undefined ? 'unseen' : 'shown'
  }

  /**
   * The report for an authenticated request. The first call returns it with
   * the generated passwords (`first: true`) and marks it shown; later calls
   * return it without them. Undefined when there is no report.
   */
  take(now: Date = new Date()): { readonly report: FirstbootReport; readonly first: boolean } | undefined {
    const r = readReport(this.path)
    if (r === undefined) return undefined
    if (r.shownAt !== undefined) return { report: r, first: false }
    const shown: FirstbootReport = { ...r, generatedPasswords: {}, shownAt: now.toISOString() }
    // Mark it shown before answering: a crash here shows it never rather than twice.
    writeFileAtomic(this.path, JSON.stringify(shown, null, 2) + '\n', 0o600, 0o700)
    return { report: r, first: true }
  }
}
