import { describe, expect } from 'vitest';
import { admin, bearer, createAccount, ingestTest, injector, uid } from './support.js';

// Prices on their happy path; limits and bad input are in prices.errors, who may set them in security.
const test = ingestTest();

describe('prices', () => {
  test('upserts prices as exact decimals and searches the list by product substring', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const tag = uid('p').replace(/-/g, '');
    const put = await inject('PUT', `/v1/prices/${tag}-tts_audio`, admin, { unit: 'second', unit_price: '0.60', per: 60 });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ product: `${tag}-tts_audio`, unit: 'second', unit_price: '0.600000', per: 60, currency: 'USD' });
    const again = await inject('PUT', `/v1/prices/${tag}-tts_audio`, admin, { unit: 'second', unit_price: '0.012500', per: 60 });
    expect(again.json().unit_price).toBe('0.012500');
    await inject('PUT', `/v1/prices/${tag}-ttsXaudio`, admin, { unit: 'minute', unit_price: '1', currency: 'EUR' });
    await inject('PUT', `/v1/prices/${tag}-image`, admin, { unit: 'image', unit_price: '0.04' });

    const acct = await createAccount(t.app);
    const search = await inject('GET', `/v1/prices?q=${tag.toUpperCase()}-TTS_`, bearer(acct.api_key));
    expect(search.statusCode).toBe(200);
    expect(search.json().prices.map((p: { product: string; unit_price: string }) => [p.product, p.unit_price])).toEqual([
      [`${tag}-tts_audio`, '0.012500'],
    ]);
    const eur = await inject('GET', `/v1/prices?q=${tag}&currency=EUR`, admin);
    expect(eur.json().prices.map((p: { product: string }) => p.product)).toEqual([`${tag}-ttsXaudio`]);
    const all = await inject('GET', `/v1/prices?q=${tag}`, admin);
    expect(all.json().prices.map((p: { product: string }) => p.product).sort()).toEqual([`${tag}-image`, `${tag}-tts_audio`, `${tag}-ttsXaudio`].sort());
  });
});
