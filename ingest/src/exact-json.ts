// JSON.parse reads `"quantity": 0.10000000000000000055` as the double 0.1, silently changing what
// the producer sent (and hiding that it had more than 6 decimals). Before parsing, each event's
// numeric quantity literal is wrapped in quotes, so the contract's Quantity sees the exact text.

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
 * Quotes number literals that are the value of a top-level "quantity" key of an event object
 * (object depth 1: a lone event, an array element or an NDJSON line). Anything else, and any
 * text that is not valid JSON, is left as is for JSON.parse to judge.
 */
export function quoteQuantities(text: string): string {
  let out = '';
  let copied = 0;
  let depth = 0;
  let lastStringWasQuantity = false;
  let valueOfQuantity = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (c === '"') {
      const end = stringEnd(text, i);
      lastStringWasQuantity = end - i - 1 === QUANTITY.length && text.startsWith(QUANTITY, i + 1);
      valueOfQuantity = false;
      i = end;
      continue;
    }
    if (c === ':') {
      valueOfQuantity = lastStringWasQuantity && depth === 1;
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
    lastStringWasQuantity = false;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

export function parseJsonExact(text: string): unknown {
  return JSON.parse(quoteQuantities(text));
}
