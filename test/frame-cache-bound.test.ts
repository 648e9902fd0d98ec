/**
 * The frame cache's bound (server/rendered.ts ByteLru as RenderService builds it): any frame up to the whole bound
 * is kept, so that a large decoded frame (a 30 MB mammogram with the default 32 MB) is not decoded again on every
 * window change; what does not fit is refused, never kept beyond the bound; least recently used goes first.
 */
import { ByteLru } from '../server/rendered';
import { loadConfig } from '../server/config';

const MB = 1024 * 1024;

test('the default frame cache keeps a 30 MB frame, within its bound', () => {
  const max = loadConfig([], {}).frameCacheBytes;
  expect(max).toBeGreaterThanOrEqual(30 * MB);
  const frames = new ByteLru<string>(max, max); // as RenderService builds it
  expect(frames.set('small', 'a', 6 * MB)).toBe(0);
  const dropped = frames.set('mammogram', 'b', 30 * MB);
  expect(dropped).toBe(6 * MB); // the older frame made room
  expect(frames.get('mammogram')).toBe('b');
  expect(frames.get('small')).toBeUndefined();
  expect(frames.set('too big', 'c', max + 1)).toBe(max + 1); // refused
  expect(frames.get('too big')).toBeUndefined();
  expect(frames.get('mammogram')).toBe('b');
});

test('other caches keep the quarter rule: one value never evicts most of them', () => {
  const images = new ByteLru<string>(16 * MB);
  expect(images.set('big', 'x', 5 * MB)).toBe(5 * MB);
  expect(images.get('big')).toBeUndefined();
  expect(images.set('ok', 'y', 4 * MB)).toBe(0);
  expect(images.get('ok')).toBe('y');
});
