import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "../src/backoff.js";

test("delays grow by the factor up to the cap, then reset", () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
});

test("jitter takes a random part off each delay", () => {
  const draws = [0, 0.5, 0.999];
  let i = 0;
  const b = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5 }, () => draws[i++]!);
  assert.deepEqual([b.next(), b.next(), Math.round(b.next())], [1000, 750, 500]);
});

test("jittered delays stay within their bounds", () => {
  const b = new Backoff({ initialMs: 10, maxMs: 5000, jitter: 0.5 });
  let want = 10;
  for (let k = 0; k < 20; k++) {
    const d = b.next();
    assert.ok(d >= want * 0.5 && d <= want, `attempt ${k}: ${d} not in [${want / 2}, ${want}]`);
    want = Math.min(5000, want * 2);
  }
});

test("bad options are refused", () => {
  for (const opts of [{ initialMs: 0 }, { initialMs: 10, maxMs: 5 }, { factor: 0.5 }, { jitter: 2 }, { initialMs: NaN }]) {
    assert.throws(() => new Backoff(opts), RangeError, JSON.stringify(opts));
  }
});
