// Two inputs moderated by a group's model, one harmless and one flagged for violence.
import { openai, report } from '../lib.mjs';

const result = await openai.moderations.create({ model: 'safety', input: ['hello', 'attack them'] });
report({
  flagged: result.results.map((r) => r.flagged),
  violence: result.results.map((r) => r.categories.violence),
  model: result.model,
});
