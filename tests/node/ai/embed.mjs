// embed and embedMany with the provider's embedding model.
import { embed, embedMany } from 'ai';
import { provider, report } from '../lib.mjs';

const model = provider.embedding('emb');
const one = await embed({ model, value: 'HX-OK', maxRetries: 0 });
const many = await embedMany({ model, values: ['HX-OK', 'HX-OK again'], maxRetries: 0 });
report({ one: one.embedding, many: many.embeddings });
