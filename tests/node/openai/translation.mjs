// A translation of a file made by the SDK's toFile, sent before `model`.
import { toFile } from 'openai';
import { openai, report, sound } from '../lib.mjs';

const file = await toFile(sound(), 'hello.wav', { type: 'audio/wav' });
const result = await openai.audio.translations.create({ file, model: 'stt' });
report({ text: result.text });
