/** One field as RFC 4180 writes it: quoted (quotes doubled) when it holds a comma, quote or line break. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** One record, CRLF-terminated as RFC 4180 says; null and undefined are empty fields. */
export function csvRecord(values: readonly (string | number | null | undefined)[]): string {
  return `${values.map((v) => csvField(v === null || v === undefined ? '' : String(v))).join(',')}\r\n`;
}
