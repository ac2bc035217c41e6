"""Continuous batching on ``model.generate``: the engine behind the ``hf_chat`` backend (``persona_core.llm.hf``).

The prompt prefix every request shares (the instructions and few-shot examples of a template) is computed once.
Each request's remaining prompt is then computed alone (no padding), and up to ``batch_size`` requests decode
together in calls to ``generate`` of ``round_tokens`` new tokens each; between calls, finished requests leave and
queued ones take their places, so one long answer never holds a whole batch. Greedy outputs equal those of
``generate`` on each prompt alone, up to floating-point ties. Models whose cache is not a plain ``DynamicCache``
(sliding-window or recurrent layers) fall back to static batches of left-padded prompts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from persona_core.llm.base import Completion, GenerationConfig, Request, cut_at_stop

ROUND_TOKENS = 8
"""New tokens per ``generate`` call between two reschedulings of the batch (finished rows leave, queued rows join)."""
MIN_SHARED_PREFIX = 16
"""A common prompt prefix shorter than this (in tokens) is not worth computing once and sharing."""


@dataclass
class ActiveRequest:
    """A request in flight: its tokens so far (prompt, then generated) and the key/value states of all but the last."""

    request: Request
    tokens: list[int]
    prompt_length: int
    states: list[tuple] | None  # per layer: (keys, values), each [1, heads, len(tokens) - 1, head_dim]

    @property
    def generated(self) -> list[int]:
        return self.tokens[self.prompt_length :]


def answer_length(new_tokens: list[int], ends: set[int]) -> int:
    """Tokens before the first end token (``generate`` also fills a finished row's remaining places with padding)."""
    return next((i for i, t in enumerate(new_tokens) if t in ends), len(new_tokens))


def join_rows(rows: list[list[tuple]], gaps: list[int]) -> list[tuple]:
    """One batch of key/value states from per-row states, each left-padded with ``gaps[i]`` zero positions.

    A row with no states (a one-token prompt) contributes padding only.
    """
    import torch
    from torch.nn.functional import pad

    layers = max(len(states) for states in rows)
    joined = []
    for layer in range(layers):
        empty = next(states[layer] for states in rows if states)
        joined.append(
            tuple(
                torch.cat(
                    [
                        pad(states[layer][part] if states else empty[part][:1, :, :0], (0, 0, gap, 0))
                        for states, gap in zip(rows, gaps, strict=True)
                    ]
                )
                for part in (0, 1)
            )
        )
    return joined


class ContinuousBatcher:
    """A loaded model and tokenizer, decoding many requests at once (see the module's docstring)."""

    def __init__(
        self, model, tokenizer, batch_size: int, share_prefix: bool = True, round_tokens: int = ROUND_TOKENS
    ):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, batch_size)
        self.share_prefix = share_prefix
        self.round_tokens = max(1, round_tokens)
        self._rows_splittable: bool | None = None
        self._stop_criteria: dict[tuple[str, ...], object] = {}

    def run(
        self,
        requests: list[Request],
        tokens: dict[str, list[int]],
        on_finished: Callable[[Request, Completion], None],
        generation: GenerationConfig,
    ) -> None:
        """Generate for every request (``tokens``: its prompt's ids), calling ``on_finished`` as each one ends."""
        import torch

        # Longest first: similar lengths decode together, and memory errors show up at once.
        queue = deque(sorted(requests, key=lambda r: -len(tokens[r.id])))
        if generation.seed is not None:
            torch.manual_seed(generation.seed)
        with torch.inference_mode():
            if not self.rows_splittable():
                while queue:
                    batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                    for request, completion in zip(
                        batch, self.generate_padded(batch, tokens, generation), strict=True
                    ):
                        on_finished(request, completion)
                return
            prefix = self.shared_prefix(list(tokens.values()))
            prefix_states = self.prefill(prefix, [])
            active: list[ActiveRequest] = []
            while queue or active:
                while queue and len(active) < self.batch_size:
                    request = queue.popleft()
                    ids = tokens[request.id]
                    active.append(
                        ActiveRequest(request, ids, len(ids), self.prefill(ids[:-1], prefix_states))
                    )
                active = self.decode_round(active, lambda s, c: on_finished(s.request, c), generation)

    def rows_splittable(self) -> bool:
        """Whether this model's cache is a plain ``DynamicCache``, whose rows can be cut out and joined."""
        if self._rows_splittable is None:
            import torch
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicLayer

            with torch.inference_mode():
                token = torch.tensor([[self.tokenizer.pad_token_id]], device=self.model.device)
                cache = self.model(token, use_cache=True).past_key_values
            self._rows_splittable = type(cache) is DynamicCache and all(
                type(x) is DynamicLayer for x in cache.layers
            )
        return self._rows_splittable

    def shared_prefix(self, token_lists: list[list[int]]) -> list[int]:
        """The longest token prefix of every prompt, leaving each at least one token of its own (or none if short)."""
        if not self.share_prefix or not token_lists:
            return []
        first, length = token_lists[0], min(len(t) for t in token_lists) - 1
        for other in token_lists[1:]:
            length = next((i for i in range(length) if first[i] != other[i]), length)
        return first[:length] if length >= MIN_SHARED_PREFIX else []

    def prefill(self, ids: list[int], prefix_states: list[tuple]) -> list[tuple]:
        """Key/value states of ``ids``, whose first tokens ``prefix_states`` already covers."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(prefix_states) if prefix_states else DynamicCache()
        new = ids[cache.get_seq_length() :]
        if not new:
            return prefix_states
        cache = self.model(
            torch.tensor([new], device=self.model.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).past_key_values
        return [(layer.keys, layer.values) for layer in cache.layers]

    def next_token_logits(self, suffixes: list[list[int]], prefix_states: list[tuple]):
        """Next-token logits after each of ``suffixes`` (the prompts past the shared prefix), in one forward pass.

        Rows are right-padded: a causal model's real tokens never see the padding after them, so each row's last
        real position is exact; only those positions' logits are computed (``logits_to_keep``).
        """
        import torch
        from transformers import DynamicCache

        device, pad = self.model.device, self.tokenizer.pad_token_id
        width, rows = max(map(len, suffixes)), len(suffixes)
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=device)
        past = prefix_states[0][0].shape[2] if prefix_states else 0
        attention_mask = torch.tensor(
            [[1] * (past + len(s)) + [0] * (width - len(s)) for s in suffixes], device=device
        )
        cache = None
        if prefix_states:
            cache = DynamicCache(
                [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefix_states]
            )
        last = sorted({len(s) - 1 for s in suffixes})
        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            use_cache=cache is not None,
            logits_to_keep=torch.tensor(last, device=device),
        ).logits
        column = torch.tensor([last.index(len(s) - 1) for s in suffixes], device=device)
        return logits[torch.arange(rows, device=device), column]

    def decode_round(
        self, active: list[ActiveRequest], on_finished, gen: GenerationConfig
    ) -> list[ActiveRequest]:
        """Decode up to ``round_tokens`` tokens for every active sequence; return those not finished."""
        import torch
        from transformers import StaticCache

        tok = self.tokenizer
        width = max(len(s.tokens) for s in active)
        gaps = [width - len(s.tokens) for s in active]  # left padding of each row
        device = self.model.device
        input_ids = torch.tensor(
            [[tok.pad_token_id] * g + s.tokens for g, s in zip(gaps, active, strict=True)], device=device
        )
        attention_mask = torch.tensor(
            [[0] * g + [1] * len(s.tokens) for g, s in zip(gaps, active, strict=True)], device=device
        )
        budget = max(gen.max_tokens - len(s.generated) for s in active)
        # With a minimum length every row must start together, so the round runs to the end.
        steps = budget if gen.min_tokens else min(self.round_tokens, budget)
        # A static cache is written in place: a growing one would copy every row's states at every step.
        joined = join_rows([s.states for s in active], gaps)
        for sequence in active:
            sequence.states = None  # frees the previous round's cache, which these rows were views of
        cache = StaticCache(config=self.model.config, max_cache_len=width + steps)
        for layer, (keys, values) in enumerate(joined):
            cache.update(keys, values, layer)
        del joined
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            max_new_tokens=steps,
            **self.generate_kwargs(gen, min_new_tokens=gen.min_tokens or None),
        )
        new_tokens = output[:, width:].tolist()
        ends = self.end_ids()
        remaining = []
        for row, (sequence, new) in enumerate(zip(active, new_tokens, strict=True)):
            n_new = answer_length(new, ends)
            sequence.tokens = sequence.tokens + new[:n_new]
            generated = sequence.generated[: gen.max_tokens]
            text = tok.decode(generated, skip_special_tokens=True)
            if n_new < len(new) or len(generated) >= gen.max_tokens or cut_at_stop(text, gen.stop) != text:
                usage = {"prompt_tokens": sequence.prompt_length, "completion_tokens": len(generated)}
                on_finished(sequence, Completion(sequence.request.id, cut_at_stop(text, gen.stop), usage))
            else:
                # All ``steps`` tokens are this row's own: its states are the cache row without its padding.
                end = len(sequence.tokens) - 1 + gaps[row]
                sequence.states = [
                    (
                        layer.keys[row : row + 1, :, gaps[row] : end],
                        layer.values[row : row + 1, :, gaps[row] : end],
                    )
                    for layer in cache.layers
                ]
                remaining.append(sequence)
        return remaining

    def generate_padded(
        self, batch: list[Request], tokens: dict[str, list[int]], gen: GenerationConfig
    ) -> list[Completion]:
        """One static batch of left-padded prompts, for models whose cache cannot be split into rows."""
        tok = self.tokenizer
        encoded = tok.pad({"input_ids": [tokens[r.id] for r in batch]}, return_tensors="pt").to(
            self.model.device
        )
        output = self.model.generate(
            **encoded,
            max_new_tokens=gen.max_tokens,
            **self.generate_kwargs(gen, min_new_tokens=gen.min_tokens or None),
        )
        ends = self.end_ids()
        results = []
        for request, new in zip(batch, output[:, encoded.input_ids.shape[1] :].tolist(), strict=True):
            n_new = answer_length(new, ends)
            text = cut_at_stop(tok.decode(new[:n_new], skip_special_tokens=True), gen.stop)
            usage = {"prompt_tokens": len(tokens[request.id]), "completion_tokens": n_new}
            results.append(Completion(request.id, text, usage))
        return results

    def generate_kwargs(self, gen: GenerationConfig, **extra) -> dict:
        """Sampling, padding and stop-string arguments of ``model.generate``."""
        tok = self.tokenizer
        kwargs = dict(pad_token_id=tok.pad_token_id, do_sample=gen.temperature > 0, **extra)
        if gen.temperature > 0:
            kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if gen.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = gen.repetition_penalty
        if gen.stop:
            kwargs["stopping_criteria"] = self.stop_criteria(gen.stop)
        return kwargs

    def stop_criteria(self, stop: tuple[str, ...]):
        """``generate``'s stop-string criterion, built once: ``stop_strings=`` rebuilds it on every call (its cache
        misses for fast tokenizers, whose vocabulary order varies), which costs ~0.4 s a call for a 49k vocabulary."""
        if stop not in self._stop_criteria:
            from transformers import StoppingCriteriaList, StopStringCriteria

            self._stop_criteria[stop] = StoppingCriteriaList(
                [StopStringCriteria(tokenizer=self.tokenizer, stop_strings=list(stop))]
            )
        return self._stop_criteria[stop]

    def end_ids(self) -> set[int]:
        """Tokens that end an answer: padding, and the model's own end-of-sequence ids (a chat model may end turns
        with a token other than the tokenizer's)."""
        tok = self.tokenizer
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        configured = configured if isinstance(configured, list) else [configured]
        return {tok.pad_token_id, tok.eos_token_id, *configured} - {None}
