/** A duration as seconds with one decimal ("12.3 s"), from integer milliseconds, without float formatting. */
export function seconds(ms: number): string {
  const tenths = Math.round(ms / 100);
  return `${Math.trunc(tenths / 10)}.${Math.abs(tenths % 10)} s`;
}
