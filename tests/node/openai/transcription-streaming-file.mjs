// A transcription of a file wrapped by the SDK's toStreamingFile: the form is sent as the
// stream is read (chunked, no length), the file before `model`, HXGW_REPEAT times the sound.
import { Readable } from 'node:stream';
import { toStreamingFile } from 'openai';
import { openai, report, sound } from '../lib.mjs';

const bytes = sound(Number(process.env.HXGW_REPEAT ?? 1));
const chunks = [];
for (let at = 0; at < bytes.length; at += 65536) chunks.push(bytes.subarray(at, at + 65536));
const file = toStreamingFile(Readable.from(chunks), 'hello.wav', { type: 'audio/wav' });
const result = await openai.audio.transcriptions.create({ file, model: 'stt' });
report({ result });
