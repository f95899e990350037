// Helpers of the image tests (scripts/test-image): read an SD-card image
// without mounting it. The partition table with sfdisk, the FAT partition
// with mtools (`image@@offset`), the ext4 partition with debugfs
// (`image?offset=N`, e2fsprogs' unix io manager option). docs/image.md.

import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

/** The repository root. */
export const REPO = resolve(import.meta.dirname, '../..')

/** The image under test: $FIELDPROOF_IMAGE (set by scripts/test-image). */
export function imagePath(): string {
  const p = process.env['FIELDPROOF_IMAGE']
  if (!p) throw new Error('FIELDPROOF_IMAGE is not set: run the image tests with `bash scripts/test-image`')
  return p
}

/** One MBR partition as sfdisk --json reports it (sectors of 512 bytes). */
export interface Partition {
  /** Device name sfdisk gives it (image path + number). */
  readonly node: string
  /** First sector. */
  readonly start: number
  /** Length in sectors. */
  readonly size: number
  /** MBR type as hex without 0x, e.g. "c" or "83". */
  readonly type: string
  /** The boot flag. */
  readonly bootable?: boolean
}

/** The partition table of an image file. */
export interface PartitionTable {
  readonly label: string
  readonly id: string
  readonly partitions: readonly Partition[]
}

export function partitionTable(img: string): PartitionTable {
  const out = execFileSync('sfdisk', ['--json', img], { encoding: 'utf8' })
  return (JSON.parse(out) as { partitiontable: PartitionTable }).partitiontable
}

/** Byte offsets of the boot (FAT) and root (ext4) partitions. */
export function offsets(img: string): { boot: number; root: number } {
  const [p1, p2] = partitionTable(img).partitions
  if (!p1 || !p2) throw new Error(`${img}: expected two partitions`)
  return { boot: p1.start * 512, root: p2.start * 512 }
}

function run(cmd: string, args: string[], opts: { input?: string; binary?: boolean } = {}): Buffer {
  const r = spawnSync(cmd, args, { input: opts.input, maxBuffer: 512 * 1024 * 1024, env: { ...process.env, TZ: 'UTC' } })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr.toString().trim()}`)
  return r.stdout
}

/** Names in a FAT directory (mdir -b: bare paths). */
export function fatList(img: string, dir = '::/'): string[] {
  const { boot } = offsets(img)
  const prefix = dir.replace(/\/*$/, '/')
  return run('mdir', ['-b', '-i', `${img}@@${boot}`, dir]).toString('utf8').split('\n').filter(Boolean)
    .map((l) => (l.startsWith(prefix) ? l.slice(prefix.length) : l.replace(/^::\/?/, '')).replace(/\/$/, ''))
}

/** A file from the FAT partition, or undefined when it does not exist. */
export function fatRead(img: string, path: string): Buffer | undefined {
  const { boot } = offsets(img)
  const r = spawnSync('mtype', ['-i', `${img}@@${boot}`, `::/${path}`], { maxBuffer: 512 * 1024 * 1024 })
  return r.status === 0 ? r.stdout : undefined
}

/** Copy a file from the FAT partition to the host. */
export function fatCopyOut(img: string, path: string, dest: string): void {
  const { boot } = offsets(img)
  run('mcopy', ['-n', '-i', `${img}@@${boot}`, `::/${path}`, dest])
}

/** Copy a host file onto the FAT partition (replacing it). */
export function fatCopyIn(img: string, src: string, path: string): void {
  const { boot } = offsets(img)
  run('mcopy', ['-o', '-i', `${img}@@${boot}`, src, `::/${path}`])
}

function debugfs(img: string, request: string): string {
  const { root } = offsets(img)
  return run('debugfs', ['-R', request, `${img}?offset=${root}`]).toString('utf8')
}

/** A file of the root filesystem, or undefined when it does not exist. */
export function rootRead(img: string, path: string): Buffer | undefined {
  const { root } = offsets(img)
  const r = spawnSync('debugfs', ['-R', `cat "${path}"`, `${img}?offset=${root}`], { maxBuffer: 512 * 1024 * 1024 })
  if (r.status !== 0 || /File not found by ext2_lookup/.test(r.stderr.toString())) return undefined
  return r.stdout
}

/** Inode facts of a root filesystem path: type, mode, owner, link target. */
export interface RootStat {
  readonly type: 'regular' | 'directory' | 'symlink' | 'other'
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly size: number
  readonly target?: string
}

export function rootStat(img: string, path: string): RootStat | undefined {
  const { root } = offsets(img)
  const r = spawnSync('debugfs', ['-R', `stat "${path}"`, `${img}?offset=${root}`], { encoding: 'utf8' })
  if (r.status !== 0 || !/Inode:/.test(r.stdout)) return undefined
  const s = r.stdout
  const type = /Type: (\w+)/.exec(s)?.[1]
  const mode = parseInt(/Mode:\s+(\d+)/.exec(s)?.[1] ?? '0', 8)
  const uid = Number(/User:\s+(\d+)/.exec(s)?.[1])
  const gid = Number(/Group:\s+(\d+)/.exec(s)?.[1])
  const size = Number(/Size: (\d+)/.exec(s)?.[1])
  const target = /Fast link dest: "([^"]*)"/.exec(s)?.[1]
  return {
    type: type === 'regular' || type === 'directory' || type === 'symlink' ? type : 'other',
    mode, uid, gid, size,
    ...(target !== undefined ? { target } : {}),
  }
}

/** Names in a root filesystem directory (without . and ..). */
export function rootList(img: string, dir: string): string[] {
  return debugfs(img, `ls -p "${dir}"`).split('\n').filter(Boolean)
    .map((l) => l.split('/')[5] ?? '').filter((n) => n !== '' && n !== '.' && n !== '..')
}

/** Dump a root filesystem directory tree to a new host directory; returns it. */
export function rootDump(img: string, dir: string): string {
  const out = mkdtempSync(join(tmpdir(), 'fp-image-dump-'))
  debugfs(img, `rdump "${dir}" "${out}"`)
  return out
}

/** A user of the image's /etc/passwd. */
export function passwdEntry(img: string, user: string): { uid: number; gid: number; home: string; shell: string } | undefined {
  const line = (rootRead(img, '/etc/passwd') ?? Buffer.alloc(0)).toString('utf8').split('\n').find((l) => l.startsWith(`${user}:`))
  if (!line) return undefined
  const f = line.split(':')
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '', shell: f[6] ?? '' }
}

/** Members of a group of the image's /etc/group. */
export function groupMembers(img: string, group: string): string[] | undefined {
  const line = (rootRead(img, '/etc/group') ?? Buffer.alloc(0)).toString('utf8').split('\n').find((l) => l.startsWith(`${group}:`))
  return line === undefined ? undefined : (line.split(':')[3] ?? '').split(',').filter(Boolean)
}

/** `file -b` of a host file. */
export function fileType(path: string): string {
  return execFileSync('file', ['-b', path], { encoding: 'utf8' }).trim()
}

/** The .node-version of the repository. */
export function nodeVersion(): string {
  return readFileSync(join(REPO, '.node-version'), 'utf8').trim()
}
