"""Local Hugging Face models: batched greedy generation with left padding, a shared-prefix cache and stop strings."""

from __future__ import annotations

import copy

from persona_inference.embedded import resolve_model_name
from persona_inference.errors import UsageError
from persona_inference.llm.base import (
    LLM,
    Completion,
    GenerationConfig,
    Request,
    ResultCallback,
    cut_at_stop,
    messages_for,
)

MIN_SHARED_PREFIX = 16
"""Fewer shared tokens than this are not worth a cached prefix."""
STOP_CHECK_TOKENS = 16
"""A stop string is looked for in the text of this many last tokens (stop strings are a few characters)."""


def quantization_config(load_in_4bit: bool, load_in_8bit: bool):
    """A bitsandbytes config, or a clear error where bitsandbytes or a CUDA GPU is missing."""
    if not (load_in_4bit or load_in_8bit):
        return None
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise UsageError(
            "--load_in_4bit/--load_in_8bit need a CUDA GPU and `pip install bitsandbytes`; drop the flag on this machine"
        )
    from transformers import BitsAndBytesConfig

    if load_in_4bit:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")
    return BitsAndBytesConfig(load_in_8bit=True)


def load_model_and_tokenizer(
    model_name: str,
    device_map: str | None = "auto",
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    cache_dir: str | None = None,
    dtype: str = "auto",
):
    """Load a causal LM and its tokenizer (left padding, a pad token) from a local folder or the Hub."""
    path = resolve_model_name(model_name)  # a missing folder is reported before the slow imports
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quant = quantization_config(load_in_4bit, load_in_8bit)
    if device_map == "auto" and not torch.cuda.is_available():
        device_map = None  # plain CPU placement; "auto" would pull in offloading machinery for nothing
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, cache_dir=cache_dir, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(
            path, cache_dir=cache_dir, device_map=device_map, quantization_config=quant, dtype=dtype
        )
    except OSError as err:
        raise UsageError(
            f"could not load model '{model_name}' ({str(err).splitlines()[0][:160]}): "
            "pass a local model folder, or a Hub id with network access"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


class HFBackend(LLM):
    """In-process generation. ``chat=True`` wraps each prompt in the tokenizer's chat template.

    ``share_prefix``: the tokens all prompts of a call start with (the few-shot template of persona inference, about
    half of each prompt) are run through the model once and their cache reused, instead of once per prompt.
    """

    def __init__(
        self,
        model_name: str,
        generation: GenerationConfig,
        batch_size: int = 8,
        chat: bool = True,
        model=None,
        tokenizer=None,
        share_prefix: bool = True,
        **load_kwargs,
    ):
        super().__init__(model_name, generation)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_name, **load_kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, batch_size)
        self.chat = chat and tokenizer.chat_template is not None
        self.share_prefix = share_prefix

    def render(self, request: Request) -> str:
        """The exact text the model continues."""
        if not self.chat:
            return request.prompt + request.prefill
        messages = messages_for(request, with_prefill=False)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + request.prefill

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not self.chat).input_ids

    def generate(self, requests: list[Request], on_result: ResultCallback) -> None:
        token_ids = {r.id: self.encode(self.render(r)) for r in requests}
        shared = self.shared_prefix(list(token_ids.values())) if self.share_prefix else []
        prefix_cache = self.prefix_cache(shared) if shared else None
        # Longest first: similar lengths share a batch (less padding), and memory errors show up at once.
        ordered = sorted(requests, key=lambda r: -len(token_ids[r.id]))
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            for completion in self.generate_batch(
                [token_ids[r.id] for r in batch], [r.id for r in batch], len(shared), prefix_cache
            ):
                prefill = next(r.prefill for r in batch if r.id == completion.id)
                completion.text = prefill + completion.text
                on_result(completion)

    @staticmethod
    def shared_prefix(sequences: list[list[int]]) -> list[int]:
        """The tokens every sequence starts with (each keeps at least one of its own), if long enough to share."""
        if len(sequences) < 2:
            return []
        first, limit = sequences[0], min(len(s) for s in sequences) - 1
        length = 0
        while length < limit and all(s[length] == first[length] for s in sequences):
            length += 1
        return first[:length] if length >= MIN_SHARED_PREFIX else []

    def prefix_cache(self, prefix: list[int]):
        """The key/value cache of ``prefix``, computed once: the few-shot template every prompt starts with."""
        import torch

        with torch.inference_mode():
            ids = torch.tensor([prefix], device=self.model.device)
            return self.model(input_ids=ids, use_cache=True).past_key_values

    def generate_batch(
        self, token_ids: list[list[int]], ids: list[str], prefix_length: int = 0, prefix_cache=None
    ) -> list[Completion]:
        """Generate for one batch; a row leaves the batch as soon as it ends, so no step is spent on finished rows.

        Rows are ``shared prefix + padding + own tokens`` (left padding of the part after the prefix); position ids
        come from the attention mask, so every row sees the positions it would see alone. Greedy by default;
        ``temperature > 0`` samples from the softmax of the logits (no top-p or top-k), seeded by ``seed``.
        """
        import torch

        gen, tok, device = self.generation, self.tokenizer, self.model.device
        width = max(len(t) for t in token_ids) - prefix_length
        rows, masks = [], []
        for tokens in token_ids:
            own = tokens[prefix_length:]
            padding = width - len(own)
            rows.append(tokens[:prefix_length] + [tok.pad_token_id] * padding + own)
            masks.append([1] * prefix_length + [0] * padding + [1] * len(own))
        input_ids = torch.tensor(rows, device=device)
        mask = torch.tensor(masks, device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)  # generation appends to the cache: keep the shared one intact
            cache.batch_repeat_interleave(len(rows))
        generator = None
        if gen.temperature > 0 and gen.seed is not None:
            generator = torch.Generator(device=device).manual_seed(gen.seed)
        end_ids = self.end_token_ids()
        ends = torch.tensor(sorted(end_ids), device=device)
        only_last = {"logits_to_keep": 1} if self.takes_logits_to_keep() else {}
        outputs: list[list[int]] = [[] for _ in rows]
        active = list(range(len(rows)))  # batch row -> index in ``rows``
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids[:, prefix_length:], attention_mask=mask, position_ids=positions[:, prefix_length:],
                past_key_values=cache, use_cache=True, **only_last,
            )
            next_position = positions[:, -1] + 1
            for step in range(gen.max_tokens):
                logits = out.logits[:, -1].float()
                if step < gen.min_tokens:
                    logits[:, ends] = float("-inf")
                if gen.temperature > 0:
                    probs = torch.softmax(logits / gen.temperature, dim=-1)
                    chosen = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                else:
                    chosen = logits.argmax(-1)
                keep = []
                for batch_row, token in enumerate(chosen.tolist()):
                    row = active[batch_row]
                    if token in end_ids:
                        continue
                    outputs[row].append(token)
                    if not (gen.stop and self.hit_stop(outputs[row])):
                        keep.append(batch_row)
                if not keep or step == gen.max_tokens - 1:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    out.past_key_values.batch_select_indices(index)
                    mask, chosen, next_position = mask[index], chosen[index], next_position[index]
                    active = [active[i] for i in keep]
                mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
                out = self.model(
                    input_ids=chosen[:, None], attention_mask=mask, position_ids=next_position[:, None],
                    past_key_values=out.past_key_values, use_cache=True, **only_last,
                )
                next_position = next_position + 1
        results = []
        for row_id, tokens, row_mask in zip(ids, outputs, masks, strict=True):
            text = cut_at_stop(tok.decode(tokens, skip_special_tokens=True), gen.stop)
            results.append(Completion(row_id, text, {"prompt_tokens": sum(row_mask), "completion_tokens": len(tokens)}))
        return results

    def end_token_ids(self) -> set[int]:
        """Tokens that end a generation: the tokenizer's and the model's end-of-sequence ids, and padding."""
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        configured = configured if isinstance(configured, list) else [configured]
        return {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, *configured} - {None}

    def takes_logits_to_keep(self) -> bool:
        """Whether the model can return the last position's logits only (not a vocabulary row per prompt token)."""
        import inspect

        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # PEFT passes it on
        return "logits_to_keep" in inspect.signature(model.forward).parameters

    def hit_stop(self, tokens: list[int]) -> bool:
        """Whether the text of ``tokens`` contains a stop string (only its end can have just completed one)."""
        tail = self.tokenizer.decode(tokens[-STOP_CHECK_TOKENS:], skip_special_tokens=True)
        return any(stop and stop in tail for stop in self.generation.stop)
