// JSON.parse reads `"quantity": 0.10000000000000000055` as the double 0.1, silently changing what
// the producer sent (and hiding that it had more than 6 decimals). Node 20's JSON.parse gives a
// reviver no source text, so before parsing, each event's numeric quantity literal is wrapped in
// quotes and the contract's Quantity judges the exact text. One pass over the body, with
// JSON.parse doing the rest: a full JavaScript JSON parser would cost several times more.

const QUANTITY = 'quantity';
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const AFTER_VALUE = /[\s,}\]]/;

/** Index of the quote closing the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i < 0) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
}

/**
 * Whether the string literal text[start..end] (quotes included) means "quantity". An escaped
 * spelling ("quan\u0074ity") means the same key to JSON.parse, so it is decoded before comparing;
 * `nextBackslash` (the first backslash at or after `start`, or -1) keeps that test O(1).
 */
function isQuantityKey(text: string, start: number, end: number, nextBackslash: number): boolean {
  if (nextBackslash < 0 || nextBackslash > end) {
    return end - start - 1 === QUANTITY.length && text.startsWith(QUANTITY, start + 1);
  }
  try {
    return JSON.parse(text.slice(start, end + 1)) === QUANTITY;
  } catch {
    return false; // not a valid string: JSON.parse will refuse the whole text anyway
  }
}

/**
 * Quotes number literals that are the value of a top-level "quantity" key of an event object
 * (object depth 1: a lone event, an array element or an NDJSON line), however the key is spelled.
 * Anything else, and any text that is not valid JSON, is left as is for JSON.parse to judge.
 */
export function quoteQuantities(text: string): string {
  let out = '';
  let copied = 0;
  let depth = 0;
  let nextBackslash = text.indexOf('\\');
  // The last string literal seen, until the next token: a key if a ':' follows.
  let stringStart = -1;
  let stringStop = -1;
  let valueOfQuantity = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (c === '"') {
      const end = stringEnd(text, i);
      if (nextBackslash >= 0 && nextBackslash < i) nextBackslash = text.indexOf('\\', i);
      stringStart = i;
      stringStop = end;
      valueOfQuantity = false;
      i = end;
      continue;
    }
    if (c === ':') {
      valueOfQuantity = depth === 1 && stringStart >= 0 && isQuantityKey(text, stringStart, stringStop, nextBackslash);
      stringStart = -1;
      continue;
    }
    if (valueOfQuantity && (c === '-' || (c >= '0' && c <= '9'))) {
      JSON_NUMBER.lastIndex = i;
      const m = JSON_NUMBER.exec(text);
      const end = m ? i + m[0].length : i;
      if (m && (end === text.length || AFTER_VALUE.test(text[end]!))) {
        out += `${text.slice(copied, i)}"${m[0]}"`;
        copied = end;
        i = end - 1;
      }
    } else if (c === '{') depth++;
    else if (c === '}') depth--;
    valueOfQuantity = false;
    stringStart = -1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

export function parseJsonExact(text: string): unknown {
  return JSON.parse(quoteQuantities(text));
}
