// A streamed Responses API call: its events in order, the text deltas, and the final usage.
import { openai, report } from '../lib.mjs';

const stream = await openai.responses.create({ model: 'chat', input: 'hi', stream: true });
const types = [];
const sequenceNumbers = [];
const deltas = [];
let completed = null;
for await (const event of stream) {
  types.push(event.type);
  sequenceNumbers.push(event.sequence_number);
  if (event.type === 'response.output_text.delta') deltas.push(event.delta);
  if (event.type === 'response.completed') completed = event.response;
}
report({ types, sequenceNumbers, deltas, text: deltas.join(''), status: completed?.status ?? null, usage: completed?.usage ?? null });
