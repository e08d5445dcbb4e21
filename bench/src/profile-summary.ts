// Summarizes a V8 .cpuprofile (node --cpu-prof): top functions by self time, and the same grouped
// by package/file. Usage: tsx bench/src/profile-summary.ts <file.cpuprofile> [topN]
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { transformSync } from 'esbuild';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  function: string;
  location: string;
  selfMs: number;
  selfPct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** share of samples where the process was idle (waiting on I/O) */
  idlePct: number;
  gcPct: number;
  top: ProfileEntry[];
  byModule: { module: string; selfMs: number; selfPct: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  const m = /\/((?:rater|schemas|sink|ingest|bench)\/src\/.*)$/.exec(u);
  return m ? m[1]! : u.startsWith('node:') ? u : u.split('/').slice(-2).join('/');
}

function moduleOf(url: string): string {
  const s = shortUrl(url);
  if (s.startsWith('node:')) return 'node internals';
  if (s === '(native)') return '(native / V8)';
  const scoped = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(s);
  if (/^(rater|schemas|sink|ingest|bench)\/src\//.test(s)) return s.split('/').slice(0, 3).join('/');
  return scoped ? scoped[1]! : s;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decodes a source map's mappings: per generated line, [generated column, source line] pairs. */
function decodeMappings(mappings: string): [number, number][][] {
  const lines: [number, number][][] = [];
  let srcLine = 0;
  for (const line of mappings.split(';')) {
    const segs: [number, number][] = [];
    let col = 0;
    for (const seg of line.split(',')) {
      if (!seg) continue;
      const vals: number[] = [];
      let shift = 0;
      let value = 0;
      for (const ch of seg) {
        const d = B64.indexOf(ch);
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      col += vals[0] ?? 0;
      if (vals.length >= 4) srcLine += vals[2]!;
      segs.push([col, srcLine]);
    }
    lines.push(segs);
  }
  return lines;
}

const maps = new Map<string, [number, number][][] | null>();

/**
 * tsx runs TypeScript through esbuild with whitespace minified, so a profile's positions are in
 * one-line generated code. Repeating tsx's transform (same esbuild options) gives the same code
 * and its source map: the position maps back to the .ts line. V8 reports a function's position at
 * its parameter list, which maps to the line of the declaration.
 */
function sourceLine(url: string, line: number, column: number): number | null {
  if (!url.startsWith('file://') || !/\.[cm]?ts$/.test(url)) return null;
  let m = maps.get(url);
  if (m === undefined) {
    m = null;
    const path = fileURLToPath(url);
    if (existsSync(path)) {
      try {
        const r = transformSync(readFileSync(path, 'utf8'), {
          target: `node${process.versions.node}`, loader: 'ts', format: 'esm', sourcemap: true,
          minifyWhitespace: true, keepNames: true, sourcefile: path,
        });
        m = decodeMappings((JSON.parse(r.map) as { mappings: string }).mappings);
      } catch {
        m = null;
      }
    }
    maps.set(url, m);
  }
  const segs = m?.[line];
  if (!segs || segs.length === 0) return null;
  let best: [number, number] | undefined;
  for (const s of segs) if (s[0] <= column) best = s;
  return (best ?? segs[0]!)[1] + 1;
}

export function summarizeProfile(file: string, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute it to the sample's node.
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const totalUs = p.endTime - p.startTime;
  const fn = new Map<string, { function: string; location: string; us: number }>();
  const mod = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') idle += us;
    if (name === '(garbage collector)') gc += us;
    const { url, lineNumber, columnNumber } = n.callFrame;
    const line = /\.[cm]?ts$/.test(url) ? sourceLine(url, lineNumber, columnNumber) : lineNumber + 1;
    const location = url ? `${shortUrl(url)}${line === null ? '' : `:${line}`}` : '';
    const key = `${name}@${location}`;
    const e = fn.get(key) ?? { function: name, location, us: 0 };
    e.us += us;
    fn.set(key, e);
    const m = !url && name.startsWith('(') && name !== '(anonymous)' ? name : moduleOf(url);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / totalUs) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    file,
    totalMs: ms(totalUs),
    idlePct: pct(idle),
    gcPct: pct(gc),
    top: [...fn.values()].sort((a, b) => b.us - a.us).slice(0, topN)
      .map((e) => ({ function: e.function, location: e.location, selfMs: ms(e.us), selfPct: pct(e.us) })),
    byModule: [...mod].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([module, us]) => ({ module, selfMs: ms(us), selfPct: pct(us) })),
  };
}

export function printProfile(s: ProfileSummary): void {
  console.log(`\nCPU profile ${s.file}\n  ${s.totalMs} ms profiled, idle ${s.idlePct}%, GC ${s.gcPct}%`);
  console.log('  top self time:');
  for (const e of s.top) console.log(`  ${e.selfPct.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(9)} ms  ${e.function}  ${e.location}`);
  console.log('  by module:');
  for (const m of s.byModule) console.log(`  ${m.selfPct.toFixed(1).padStart(5)}%  ${String(m.selfMs).padStart(9)} ms  ${m.module}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: tsx bench/src/profile-summary.ts <file.cpuprofile> [topN]');
    process.exit(2);
  }
  printProfile(summarizeProfile(file, Number(process.argv[3] ?? 25)));
}
