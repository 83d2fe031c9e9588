// An image edit: a multipart form with two image files made by toFile and a prompt,
// all before `model`.
import { toFile } from 'openai';
import { openai, report } from '../lib.mjs';

const png = (size) => Buffer.alloc(size, 0x89);
const image = [
  await toFile(png(400), 'a.png', { type: 'image/png' }),
  await toFile(png(4), 'b.png', { type: 'image/png' }),
];
const result = await openai.images.edit({ image, prompt: 'add a hat', model: 'images' });
report({ b64: result.data.map((d) => d.b64_json) });
