"""What a model's tokens cost: its `price` in model_registry.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A model's price per million tokens, in the currency of the keys' budgets. The part
    of a prompt read from or written to the provider's cache has its own price where one
    is given (Anthropic bills a read at a tenth of the input price, a write at 1.25 times;
    OpenAI a read at a half or less), else the input price."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    batch_factor: float = 1.0
    """What a batch's tokens cost, as a share of these prices: 0.5 where the provider
    halves them for batches, as OpenAI, Anthropic and Google do."""

    @property
    def prices_cache(self) -> bool:
        return self.cache_read_per_mtok is not None or self.cache_write_per_mtok is not None

    def of(
        self, prompt_tokens: int, completion_tokens: int, read: int = 0, written: int = 0
    ) -> float:
        """The cost of a prompt (`read` and `written` of it at the cache's prices) and a
        completion."""
        cost = prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        if self.cache_read_per_mtok is not None:
            cost += read * (self.cache_read_per_mtok - self.input_per_mtok)
        if self.cache_write_per_mtok is not None:
            cost += written * (self.cache_write_per_mtok - self.input_per_mtok)
        return max(cost, 0.0) / 1e6

    def most(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The most a prompt and a completion may cost: all of the prompt written to the
        cache, where that costs more than input (Anthropic's 1.25 times), as a reservation
        must assume."""
        dearer = max(self.cache_write_per_mtok or 0.0, self.input_per_mtok)
        return (prompt_tokens * dearer + completion_tokens * self.output_per_mtok) / 1e6
