import assert from "node:assert/strict";
import { formatTable, type Row, verdict } from "../bench/_report.ts";

Deno.test("bench verdicts: a rate must reach ratioAtLeast, a time stay within ratioAtMost", () => {
  const rate = (ours: number): Row => ({
    name: "rate",
    unit: "tasks/s",
    plain: 100,
    ours,
    target: { ratioAtLeast: 0.9 },
  });
  const time = (ours: number): Row => ({
    name: "time",
    unit: "ms",
    plain: 100,
    ours,
    target: { ratioAtMost: 1.05 },
  });
  assert.equal(verdict(rate(90)), "pass");
  assert.equal(verdict(rate(89)), "miss");
  assert.equal(verdict(time(105)), "pass");
  assert.equal(verdict(time(106)), "miss");
  assert.equal(
    verdict({ name: "time", unit: "ms", plain: 100, target: { ratioAtMost: 1 } }),
    "error",
  );
  assert.equal(verdict({ name: "floor", unit: "ms", plain: 20 }), "—");
  assert.equal(verdict({ name: "rss", unit: "MB", ours: 6, target: { below: 20 } }), "pass");
  assert.match(formatTable([time(104)]), /\| +1\.04 \| +≤ 1\.05 \| +pass \|/);
});
