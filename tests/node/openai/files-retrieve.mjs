// A file uploaded, then read back by the id the gateway gave it.
import { openai, report, upload } from '../lib.mjs';

const made = await upload();
report({ made, read: await openai.files.retrieve(made.id) });
