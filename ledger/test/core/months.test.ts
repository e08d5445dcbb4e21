import { describe, expect, it } from 'vitest';
import { addMonths, allowanceExpiry, InvalidMonthError, monthAt, monthsFromTo, monthStart } from '@meterstream/ledger/core/months';

describe('UTC months', () => {
  it('places an instant in its UTC month, the last millisecond included', () => {
    expect(monthAt(Date.parse('2026-01-31T23:59:59.999Z'))).toBe('2026-01');
    expect(monthAt(Date.parse('2026-02-01T00:00:00.000Z'))).toBe('2026-02');
  });

  it('adds months across year ends, both ways', () => {
    expect(addMonths('2026-11', 3)).toBe('2027-02');
    expect(addMonths('2026-01', -1)).toBe('2025-12');
    expect(addMonths('2026-01', 0)).toBe('2026-01');
    expect(monthStart('2024-03')).toBe(Date.parse('2024-03-01T00:00:00Z'));
  });

  it('expires the January allowance with rollover 2 on April 1st 00:00 UTC (the README example)', () => {
    expect(new Date(allowanceExpiry('2026-01', 2)).toISOString()).toBe('2026-04-01T00:00:00.000Z');
    expect(new Date(allowanceExpiry('2026-11', 2)).toISOString()).toBe('2027-02-01T00:00:00.000Z');
    expect(new Date(allowanceExpiry('2026-01', 0)).toISOString()).toBe('2026-02-01T00:00:00.000Z');
  });

  it('lists the months between two, both included', () => {
    expect(monthsFromTo('2025-11', '2026-02')).toEqual(['2025-11', '2025-12', '2026-01', '2026-02']);
    expect(monthsFromTo('2026-02', '2026-02')).toEqual(['2026-02']);
    expect(monthsFromTo('2026-03', '2026-02')).toEqual([]);
  });

  it('refuses what is not a month', () => {
    expect(() => addMonths('2026-13', 1)).toThrow(InvalidMonthError);
    expect(() => monthStart('2026-1')).toThrow(InvalidMonthError);
  });
});
