// generateText with the provider's default model, which speaks the Responses API.
import { generateText } from 'ai';
import { provider, report } from '../lib.mjs';

const result = await generateText({ model: provider('chat'), prompt: 'hi', maxRetries: 0 });
report({ text: result.text, finishReason: result.finishReason, usage: result.usage });
