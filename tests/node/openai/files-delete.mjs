// A file uploaded, deleted by the id the gateway gave it, then no longer found.
import OpenAI from 'openai';
import { openai, report, upload } from '../lib.mjs';

const made = await upload();
const deleted = await openai.files.delete(made.id);
let afterDelete = null;
try {
  await openai.files.retrieve(made.id);
} catch (error) {
  afterDelete = { notFound: error instanceof OpenAI.NotFoundError, status: error.status };
}
report({ madeId: made.id, deleted, afterDelete });
