// A file uploaded for a batch: the file object the gateway answers.
import { report, upload } from '../lib.mjs';

report(await upload());
