// A Responses API follow-up: a second response continuing the first by previous_response_id.
import { openai, report } from '../lib.mjs';

const first = await openai.responses.create({ model: 'chat', input: 'hi' });
const second = await openai.responses.create({ model: 'chat', input: 'and?', previous_response_id: first.id });
report({ firstId: first.id, previous: second.previous_response_id, turns: second.metadata?.turns ?? null, text: second.output_text });
