import { CHUNK_OVERHEAD_BYTES, createRequestBudget } from "../../src/server/request-budget";

// The server-wide count of request bytes still arriving: each call takes its chunks from it and
// gives them back, whatever way it ends, so that the count returns to 0.

const CHUNK = 1000 + CHUNK_OVERHEAD_BYTES;

test("chunks are counted with their overhead, across calls, and a chunk that does not fit takes nothing", () => {
  const budget = createRequestBudget(3 * CHUNK);
  const a = budget.open();
  const b = budget.open();

  expect(a.takeChunk(1000)).toBe(true);
  expect(b.takeChunk(1000)).toBe(true);
  expect(b.takeChunk(1000)).toBe(true);
  expect(budget.heldBytes).toBe(3 * CHUNK);
  expect(a.takeChunk(1)).toBe(false);
  expect(a.bytes).toBe(CHUNK);
  expect(budget.availableBytes).toBe(0);

  b.close();
  expect(budget.heldBytes).toBe(CHUNK);
  expect(a.takeChunk(1000)).toBe(true);
});

test("keep gives back all but what is kept; close gives back the rest, once, and a closed hold counts nothing more", () => {
  const budget = createRequestBudget(10 * CHUNK);
  const hold = budget.open();
  for (let i = 0; i < 4; i++) hold.takeChunk(1000);

  hold.keep(CHUNK);
  expect(budget.heldBytes).toBe(CHUNK);
  hold.keep(5 * CHUNK); // never more than it holds
  expect(budget.heldBytes).toBe(CHUNK);

  hold.close();
  hold.close();
  expect(budget.heldBytes).toBe(0);
  expect(hold.takeChunk(1000)).toBe(true);
  expect(budget.heldBytes).toBe(0);
});
