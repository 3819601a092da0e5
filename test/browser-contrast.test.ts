// The browser page's colours, read from its style sheet, meet WCAG 2.1 AA: text >= 4.5:1 against its background,
// and the marks that tell token kinds apart >= 3:1 against what surrounds them (non-text contrast).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const CSS = readFileSync(new URL('../examples/browser/style.css', import.meta.url), 'utf8');

/** The declarations of the rule whose selector list contains `selector` exactly. */
function rule(selector: string): Record<string, string> {
  const body = CSS.replace(/\/\*[\s\S]*?\*\//g, '')
    .split('}')
    .map((r) => r.split('{'))
    .find(([sel]) => sel.split(',').some((s) => s.trim() === selector))?.[1];
  if (body === undefined) throw new Error(`style.css has no rule for ${selector}`);
  return Object.fromEntries(body.split(';').filter((d) => d.includes(':')).map((d) => [d.slice(0, d.indexOf(':')).trim(), d.slice(d.indexOf(':') + 1).trim()]));
}

/** The colour a property names (its first hex colour: `background: #fff`, `border-bottom: 2px solid #3a6fd8`). */
function colour(selector: string, property: string): string {
  const hex = rule(selector)[property]?.match(/#[0-9a-f]{3,6}\b/i)?.[0];
  if (!hex) throw new Error(`${selector} has no colour in ${property}`);
  return hex;
}

/** WCAG relative luminance of #rgb or #rrggbb. */
function luminance(hex: string): number {
  const h = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, (c) => c + c) : hex;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const page = () => colour(':root', 'background');
const column = () => colour('.column', 'background');
const text = () => colour(':root', 'color');

describe('browser page colours (WCAG 2.1 AA)', () => {
  it.each([
    ['body text on the page', text, page],
    ['secondary text (#status, .stats, footer) on the page', () => colour('#status', 'color'), page],
    ['secondary text on a column', () => colour('.stats', 'color'), column],
    ['form labels on the page', () => colour('label', 'color'), page],
    ['the prompt in a column', () => colour('.prompt-text', 'color'), column],
    ['the tokens/s figure in a column', () => colour('.rate', 'color'), column],
    ['the text of a target token on its tint', text, () => colour('.tok.t', 'background')],
    ['the text of an accepted draft token on its tint', text, () => colour('.tok.d', 'background')],
    ['the alert text on its background', () => colour('.alert', 'color'), () => colour('.alert', 'background')],
  ])('%s: at least 4.5:1', (_, fg, bg) => {
    expect(contrast(fg(), bg())).toBeGreaterThanOrEqual(4.5);
  });

  it.each([
    ['target token', '.tok.t'],
    ['accepted draft token', '.tok.d'],
  ])('the underline of a %s: at least 3:1 against the column and against its own tint', (_, selector) => {
    const mark = colour(selector, 'border-bottom');
    expect(contrast(mark, column())).toBeGreaterThanOrEqual(3);
    expect(contrast(mark, colour(selector, 'background'))).toBeGreaterThanOrEqual(3);
  });

  it('the two token kinds differ in both tint and underline colour', () => {
    expect(colour('.tok.t', 'border-bottom')).not.toBe(colour('.tok.d', 'border-bottom'));
    expect(colour('.tok.t', 'background')).not.toBe(colour('.tok.d', 'background'));
  });
});
