// A Responses API call (client.responses.create), not streamed.
import { openai, report } from '../lib.mjs';

const response = await openai.responses.create({ model: 'chat', input: 'hi' });
report({ id: response.id, status: response.status, text: response.output_text, usage: response.usage });
