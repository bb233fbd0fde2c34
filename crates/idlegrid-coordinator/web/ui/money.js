// Money as people read and type it: the API counts micro-credits (millionths of a credit);
// people read credits and what they are worth in the grid's currency, and type credits.

import { api, session } from './api.js';
import { formatCredits, h } from './dom.js';

const MICROS = 1_000_000;

let display = null;
let displayFor = null;

/**
 * How this grid shows credits (`display` of `GET /v1/balance`: currency and worth of a credit),
 * read once per signed-in session. A grid that does not say shows credits alone.
 */
export async function creditDisplay() {
  if (!display || displayFor !== session.secret) {
    displayFor = session.secret;
    display = api('/v1/balance').then((b) => b.display || { currency: '', per_credit: 1 })
      .catch((e) => { display = null; throw e; });
  }
  return display;
}

/** `micros` worth in the currency: two decimals, more only for amounts below a cent. */
function currencyAmount(micros, perCredit) {
  const value = (Number(micros) / MICROS) * perCredit;
  const abs = Math.abs(value);
  if (abs === 0 || abs >= 0.01) return value.toFixed(2);
  const digits = Math.min(8, 1 - Math.floor(Math.log10(abs)));
  return value.toFixed(digits).replace(/0+$/, '');
}

/**
 * Micro-credits for people: "12.50 credits (12.50 USD)". The credits are exact (every digit
 * there is, none more: `formatCredits` short); the currency is what they are worth.
 */
export function moneyText(micros, shown) {
  if (micros === null || micros === undefined) return '—';
  const credits = formatCredits(micros, { short: true });
  if (!shown || !shown.currency) return credits;
  return `${credits} (${currencyAmount(micros, shown.per_credit).replace('-', '−')} ${shown.currency})`;
}

/**
 * `moneyText` for a tile of large numbers: the credits large, what they are worth smaller on a
 * line of its own (the text read aloud is the same).
 */
export function moneyTile(micros, shown) {
  const text = moneyText(micros, shown);
  const cut = text.indexOf(' (');
  if (cut < 0) return text;
  return h('span', {}, text.slice(0, cut), ' ', h('span', { class: 'worth' }, text.slice(cut + 1)));
}

/** The rate, said once on a page about money: "1 credit = 1.00 USD". */
export function rateText(shown) {
  if (!shown || !shown.currency) return 'Amounts are in credits.';
  return `1 credit = ${currencyAmount(MICROS, shown.per_credit)} ${shown.currency}`;
}

/**
 * Credits typed by a person ("12", "0.5", "1.000001") as micro-credits, exactly: the decimal
 * string is split at its point, never read as a floating-point number, so "0.1" is 100000 and
 * not 99999.99…. Throws an Error saying what is wrong with the text.
 */
export function parseCredits(text) {
  const value = String(text).trim().replace(/^\+/, '');
  const match = value.match(/^(\d*)(?:[.,](\d*))?$/);
  if (!value || !match || (!match[1] && !match[2])) {
    throw new Error('Type an amount of credits, like 12 or 2.50.');
  }
  const [, whole, fraction = ''] = match;
  if (fraction.length > 6) throw new Error('A credit has 6 decimal places at most (0.000001 is the smallest amount).');
  const micros = BigInt(whole || '0') * BigInt(MICROS) + BigInt(fraction.padEnd(6, '0'));
  if (micros > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('That amount is too large.');
  return Number(micros);
}
