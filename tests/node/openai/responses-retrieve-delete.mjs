// A response read back, its input items listed, then deleted, by the id the gateway gave it.
import OpenAI from 'openai';
import { openai, report } from '../lib.mjs';

const made = await openai.responses.create({ model: 'chat', input: 'what is two and two' });
const read = await openai.responses.retrieve(made.id);
const items = [];
for await (const item of openai.responses.inputItems.list(made.id)) items.push(item.content[0].text);
await openai.responses.delete(made.id);
let afterDelete = null;
try {
  await openai.responses.retrieve(made.id);
} catch (error) {
  afterDelete = { notFound: error instanceof OpenAI.NotFoundError, status: error.status };
}
report({ madeId: made.id, readId: read.id, readText: read.output_text, items, afterDelete });
