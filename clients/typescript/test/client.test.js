// The client against a live service: LOFT_URL (and LOFT_API_KEY when it needs a key).
// `make test` runs it on the suite's service (tests/test_typescript_client.py).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { ApiError, LoftClient } from "../dist/index.js";

const baseUrl = process.env.LOFT_URL;
if (!baseUrl) throw new Error("set LOFT_URL to a running LOFT memory service");
const loft = new LoftClient({ baseUrl, apiKey: process.env.LOFT_API_KEY });

const fresh = () => `t-ts-${randomUUID().slice(0, 8)}`;

// what the worker files reaches the service's answers shortly after a write: ask until it does
async function eventually(read, ok, what) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(value).slice(0, 2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test("messages added to a session are read back and reach the context with provenance", async () => {
  const user = fresh();
  const added = await loft.addMessages(
    user,
    [
      { role: "user", content: "I'm Nora and I love teak coffee tables." },
      { role: "assistant", content: "Teak it is." },
    ],
    { channel: "test" },
  );
  assert.equal(added.created, 2);
  const page = await loft.sessionMessages(user, added.session_id);
  assert.deepEqual(
    page.messages.map((m) => [m.role, m.content]),
    [
      ["user", "I'm Nora and I love teak coffee tables."],
      ["assistant", "Teak it is."],
    ],
  );
  const context = await eventually(
    () => loft.context(user, "which coffee tables does she like?", { budget: 600 }),
    (c) => c.items.some((i) => i.text.includes("teak")),
    "the context never quoted the turn",
  );
  const quoted = context.items.find((i) => i.text.includes("teak") && i.provenance.message_ids.length > 0);
  assert.ok(quoted, "an item names the message it came from");
  assert.ok(quoted.provenance.message_ids.every((id) => added.message_ids.includes(id)));
  assert.ok(context.text.includes("teak"));

  const gone = await loft.deleteSession(user, added.session_id);
  assert.equal(gone.messages, 2);
  await assert.rejects(loft.sessionMessages(user, added.session_id), (e) => e instanceof ApiError && e.status === 404);
});

test("a chat turn, then one streamed: start, tokens, done with the stored reply", async () => {
  const user = fresh();
  const turn = await loft.chat(user, "Hi, my name is Nora and I love modern furniture", { budget: 500 });
  assert.ok(turn.reply.length > 0);
  assert.equal(typeof turn.context.text, "string");

  const events = [];
  for await (const event of loft.chatStream(user, "What do I like?", { session_id: turn.session_id })) {
    events.push(event);
  }
  assert.equal(events[0].event, "start");
  assert.equal(events[0].data.session_id, turn.session_id);
  const done = events.at(-1);
  assert.equal(done.event, "done");
  const tokens = events.filter((e) => e.event === "token");
  assert.ok(tokens.length > 1, "the reply arrives in pieces");
  assert.equal(tokens.map((e) => e.data.text).join(""), done.data.reply);
  const stored = await loft.sessionMessages(user, turn.session_id);
  assert.equal(stored.messages.at(-1).content, done.data.reply);
  assert.equal(stored.messages.length, 4);
});

test("the summary, recommendations with reasons, and erasure", async () => {
  const user = fresh();
  await loft.chat(user, "Hi, my name is Ada and I love modern furniture");
  const summary = await eventually(() => loft.summary(user), (s) => s.name === "Ada", "the name was never learned");
  assert.equal(summary.user_identifier, user);

  const recommended = await eventually(
    () => loft.recommendations(user, { limit: 3 }),
    (r) => r.items.length === 3,
    "no recommendations",
  );
  assert.equal(recommended.cold_start, true);
  for (const item of recommended.items) assert.ok(item.reasons.length > 0, "each product says why");

  const receipt = await loft.erase(user);
  assert.ok(receipt.receipt_id);
  assert.equal(receipt.status, "complete");
  await assert.rejects(loft.summary(user), (e) => e instanceof ApiError && e.status === 404);
});

test("an error answer is an ApiError with the API's code and detail", async () => {
  await assert.rejects(loft.context(fresh(), "anything", { budget: 1 }), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 422);
    assert.equal(e.error, "validation_error");
    assert.match(e.detail, /budget/);
    return true;
  });
  // a streamed turn refused before it starts is thrown too, not streamed
  await assert.rejects(
    async () => {
      for await (const _ of loft.chatStream(fresh(), "")) assert.fail("no event for a refused turn");
    },
    (e) => e instanceof ApiError && e.status === 422,
  );
});
