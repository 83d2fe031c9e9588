// generateText with the provider's chat model, or (HXGW_AI_API=responses) its default
// model, which speaks the Responses API.
import { generateText } from 'ai';
import { aiModel, report } from '../lib.mjs';

const result = await generateText({ model: aiModel('chat'), prompt: 'hi', maxRetries: 0 });
report({ text: result.text, finishReason: result.finishReason, usage: result.usage });
