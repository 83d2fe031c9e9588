// A variation of an image, by a model named directly (dall-e answers with urls).
import { toFile } from 'openai';
import { openai, report } from '../lib.mjs';

const image = await toFile(Buffer.from('\x89PNG'), 'a.png', { type: 'image/png' });
const result = await openai.images.createVariation({ image, model: 'dalle', n: 1 });
report({ urls: result.data.map((d) => d.url) });
