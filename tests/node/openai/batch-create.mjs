// A batch created from an uploaded file.
import { report, startBatch, upload } from '../lib.mjs';

const file = await upload();
report({ fileId: file.id, batch: await startBatch(file) });
