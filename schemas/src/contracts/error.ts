import { z } from 'zod';

export const ErrorEnvelope = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

export function errorEnvelope(code: string, message: string): ErrorEnvelope {
  return { error: { code, message } };
}
