import type { z } from 'zod';

/** "quantity: quantity must not be negative; timestamp: Invalid ISO datetime" */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => `${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${issueMessage(i)}`)
    .join('; ');
}

// zod says only "Invalid input" when no branch of a union matched; name what the branches wanted.
function issueMessage(i: z.core.$ZodIssue): string {
  if (i.code !== 'invalid_union') return i.message;
  const expected = i.errors.flatMap((branch) => branch.flatMap((b) => (b.code === 'invalid_type' ? [b.expected] : [])));
  return expected.length === i.errors.length ? `Invalid input: expected ${expected.join(' or ')}` : i.message;
}
