// Embeddings, as the SDK asks for them by default (base64, decoded by the SDK).
import { openai, report } from '../lib.mjs';

const result = await openai.embeddings.create({ model: 'emb', input: ['HX-OK', 'HX-OK again'] });
report({ count: result.data.length, vectors: result.data.map((item) => item.embedding) });
