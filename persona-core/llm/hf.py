"""Local Hugging Face models: loading (quantization, dtype, the embedded model) and the ``hf_chat`` backend on
continuous batching (``persona_core.llm.batching``)."""

from __future__ import annotations

from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_core.llm import base
from persona_core.llm.base import LLM, Completion, GenerationConfig, Request, ResultCallback
from persona_core.llm.batching import ROUND_TOKENS, ContinuousBatcher


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
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4"
        )
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
    """In-process generation with ``model.generate``, continuously batched by ``batching.ContinuousBatcher`` (its
    ``engine``), and probability verdicts from one forward pass on top of the shared prompt prefix.

    ``chat=True`` wraps each prompt in the tokenizer's chat template.
    """

    def __init__(
        self,
        model_name: str,
        batch_size: int = 8,
        chat: bool = True,
        share_prefix: bool = True,
        round_tokens: int = ROUND_TOKENS,
        model=None,
        tokenizer=None,
        **load_kwargs,
    ):
        super().__init__(model_name)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_name, **load_kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.engine = ContinuousBatcher(model, tokenizer, batch_size, share_prefix, round_tokens)
        self.chat = chat and tokenizer.chat_template is not None
        self._option_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    def render(self, request: Request) -> str:
        """The exact text the model continues."""
        if not self.chat:
            return request.prompt + request.prefill
        messages = base.messages_for(request, with_prefill=False)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + request.prefill

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.engine.batch_size = max(1, value)

    def tokens(self, requests: list[Request]) -> dict[str, list[int]]:
        """Each request's rendered prompt as token ids."""
        return {
            r.id: self.tokenizer(self.render(r), add_special_tokens=not self.chat).input_ids for r in requests
        }

    def generate(
        self, requests: list[Request], on_result: ResultCallback, generation: GenerationConfig
    ) -> None:
        def finish(request: Request, completion: Completion) -> None:
            completion.text = request.prefill + completion.text
            on_result(completion)

        self.engine.run(requests, self.tokens(requests), finish, generation)

    def score_options(
        self, requests: list[Request], options: tuple[str, ...], on_result: ResultCallback
    ) -> None:
        """One forward pass per request, ``batch_size`` at a time, on top of the shared prompt prefix's states.

        An option's probability is the sum over every vocabulary token that is the option up to whitespace, from
        the full next-token distribution (so it is never missing here).
        """
        import torch

        option_ids = self.option_token_ids(options)
        tokens = self.tokens(requests)
        engine = self.engine
        queue = sorted(requests, key=lambda r: -len(tokens[r.id]))
        with torch.inference_mode():
            prefix = engine.shared_prefix(list(tokens.values())) if engine.rows_splittable() else []
            prefix_states = engine.prefill(prefix, [])
            for start in range(0, len(queue), self.batch_size):
                batch = queue[start : start + self.batch_size]
                logits = engine.next_token_logits([tokens[r.id][len(prefix) :] for r in batch], prefix_states)
                probs = logits.float().softmax(dim=-1)
                top = probs.topk(base.TOKENS_READ, dim=-1)
                for request, row, values, indices in zip(
                    batch, probs, top.values.tolist(), top.indices.tolist(), strict=True
                ):
                    option_probs = {option: float(row[ids].sum()) for option, ids in option_ids.items()}
                    read = [
                        {"token": self.tokenizer.decode([index]), "prob": round(value, 6)}
                        for value, index in zip(values, indices, strict=True)
                    ]
                    usage = {"prompt_tokens": len(tokens[request.id]), "completion_tokens": 0}
                    on_result(
                        Completion(
                            request.id,
                            max(option_probs, key=option_probs.get),
                            usage,
                            option_probs=option_probs,
                            tokens_read=read,
                        )
                    )

    def option_token_ids(self, options: tuple[str, ...]) -> dict[str, list[int]]:
        """Per option, the vocabulary tokens that decode to it up to whitespace ("1", " 1", "\n1" ...), found once."""
        if options not in self._option_ids:
            vocabulary = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            ids = {option: [] for option in options}
            for index, text in enumerate(vocabulary):
                if text.strip() in ids:
                    ids[text.strip()].append(index)
            missing = [option for option, found in ids.items() if not found]
            if missing:
                raise UsageError(
                    f"no token of {self.model_name}'s vocabulary is the answer {missing[0]!r}: use --verdict text"
                )
            self._option_ids[options] = ids
        return self._option_ids[options]
