import t from 'tap'
import { MAX_FCNT_GAP, nextDownlinkFCnt, reconstructFCnt } from './fcnt.ts'

t.test('consecutive and gapped counters', async (t) => {
  t.same(reconstructFCnt(0, null), { ok: true, fcnt32: 0, missed: 0 }, 'first frame of a session')
  t.same(reconstructFCnt(1, 0), { ok: true, fcnt32: 1, missed: 0 })
  t.same(reconstructFCnt(10, 5), { ok: true, fcnt32: 10, missed: 4 })
  t.same(reconstructFCnt(5 + MAX_FCNT_GAP, 5), { ok: true, fcnt32: 5 + MAX_FCNT_GAP, missed: MAX_FCNT_GAP - 1 }, 'exactly the max gap')
  const over = reconstructFCnt(5 + MAX_FCNT_GAP + 1, 5)
  t.equal(over.ok ? 'ok' : over.code, 'gap-too-large')
})

t.test('16-bit rollover', async (t) => {
  t.same(reconstructFCnt(0x0000, 0xffff), { ok: true, fcnt32: 0x10000, missed: 0 })
  t.same(reconstructFCnt(0x0002, 0x1fffe), { ok: true, fcnt32: 0x20002, missed: 3 })
  t.same(reconstructFCnt(0x0010, 0x7fff_fff0), { ok: true, fcnt32: 0x8000_0010, missed: 0x1f })
  t.same(reconstructFCnt(0xffff, 0xffff_fffe), { ok: true, fcnt32: 0xffff_ffff, missed: 0 }, 'the last counter')
  const ex = reconstructFCnt(0x0000, 0xffff_ffff)
  t.equal(ex.ok ? 'ok' : ex.code, 'exhausted', '32-bit rollover means rejoin')
})

t.test('replays and regressions are rejected', async (t) => {
  const rep = reconstructFCnt(7, 7)
  t.equal(rep.ok ? 'ok' : rep.code, 'replay', 'same counter twice')
  const rep2 = reconstructFCnt(0x0003, 0x30003)
  t.equal(rep2.ok ? 'ok' : rep2.code, 'replay', 'same 16 bits after a rollover')
  const reg = reconstructFCnt(99, 100)
  t.equal(reg.ok ? 'ok' : reg.code, 'regression')
  const reg2 = reconstructFCnt(0xfff0, 0x10005)
  t.equal(reg2.ok ? 'ok' : reg2.code, 'regression', 'a frame from before the rollover')
  const far = reconstructFCnt(0x7000 + 4, 4)
  t.equal(far.ok ? 'ok' : far.code, 'gap-too-large')
  const closerBack = reconstructFCnt(0x8000 + 5, 4)
  t.equal(closerBack.ok ? 'ok' : closerBack.code, 'regression', 'nearer behind than ahead')
  // Sweep across several rollovers: every frame is accepted once, and replaying it or
  // any recent earlier value is refused.
  let last: number | null = null
  let wrong = 0
  let replayed = 0
  for (let f = 0; f < 200_000; f += 13) {
    const r = reconstructFCnt(f & 0xffff, last)
    if (!r.ok || r.fcnt32 !== f) wrong++
    else last = r.fcnt32
    for (const back of [0, 1, 13, 16000]) {
      if (last !== null && last - back >= 0 && reconstructFCnt((last - back) & 0xffff, last).ok) replayed++
    }
  }
  t.equal(wrong, 0, 'every forward frame reconstructed to its 32-bit value')
  t.equal(replayed, 0, 'no replay accepted')
})

t.test('bad input', async (t) => {
  t.notOk(reconstructFCnt(-1, 0).ok)
  t.notOk(reconstructFCnt(0x10000, 0).ok)
  t.notOk(reconstructFCnt(1.5, 0).ok)
  t.notOk(reconstructFCnt(1, 2 ** 32).ok)
  t.notOk(reconstructFCnt(1, NaN).ok)
})

t.test('downlink counter', async (t) => {
  t.equal(nextDownlinkFCnt(null), 0)
  t.equal(nextDownlinkFCnt(41), 42)
  t.equal(nextDownlinkFCnt(0xffffffff), undefined)
})
