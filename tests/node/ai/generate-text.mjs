// generateText with the provider's chat model (/v1/chat/completions).
import { generateText } from 'ai';
import { provider, report } from '../lib.mjs';

const result = await generateText({ model: provider.chat('chat'), prompt: 'hi', maxRetries: 0 });
report({ text: result.text, finishReason: result.finishReason, usage: result.usage });
