import { describe, expect, test } from 'vitest';
import { csvRecord } from '../src/csv.js';

describe('csvRecord', () => {
  test('quotes only the fields RFC 4180 requires, doubling quotes, and ends with CRLF', () => {
    expect(csvRecord(['plain', 'a,b', 'say "hi"', 'two\nlines', '-0.300000', 7, null, undefined]))
      .toBe('plain,"a,b","say ""hi""","two\nlines",-0.300000,7,,\r\n');
  });
});
