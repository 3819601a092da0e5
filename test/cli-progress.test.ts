// The CLI's progress bars: on a terminal each redraws in place and ends at 100 % with a newline, so that the next
// bar or line never prints over it; elsewhere only the finished lines are written.
import { describe, expect, it } from 'vitest';
import { ProgressBars } from '../src/cli-progress.js';

function stream(isTTY: boolean) {
  const out = { text: '', isTTY, write: (s: string) => (out.text += s) };
  return out;
}

describe('ProgressBars', () => {
  it('on a terminal, a bar shows at most 99 % until finished, then 100 % and a newline', () => {
    const out = stream(true);
    const bars = new ProgressBars(out);
    bars.update('target: model.safetensors', 999, 1000);
    expect(out.text).toContain(' 99%');
    expect(out.text).not.toContain('100%');
    bars.finish('target: model.safetensors', '1.0 KB');
    expect(out.text).toMatch(/\r\S.* 100% 1\.0 KB\x1b\[K\n$/);
  });

  it('on a terminal, a new label moves past a bar left unfinished instead of printing over it', () => {
    const out = stream(true);
    const bars = new ProgressBars(out);
    bars.update('a', 1, 2);
    bars.update('b', 1, 2);
    expect(out.text.split('\n')).toHaveLength(2);
    expect(out.text.split('\n')[1]).toMatch(/^\rb /);
  });

  it('off a terminal, only the finished lines are written, one per bar', () => {
    const out = stream(false);
    const bars = new ProgressBars(out);
    bars.update('a', 1, 2);
    bars.finish('a');
    bars.finish('b', '(cached)');
    expect(out.text).toMatch(/^a +\[#{30}\] 100%\nb +\[#{30}\] 100% \(cached\)\n$/);
  });
});
