// The first-boot report on the status page (docs/first-boot.md, "The
// report"): shown in full once, to the first request that carries the API
// bearer token; then marked shown, and the generated passwords are removed
// from <state_dir>/firstboot-report.json (the owner's copy stays in
// /home/admin/firstboot-report.txt).

import { writeFileAtomic } from '../fs/atomic.ts'
import { readReport, type FirstbootReport } from './firstboot.ts'

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
