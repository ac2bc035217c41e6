"""Local Hugging Face models: batched generation (`model.generate`) with left padding and stop strings."""

from __future__ import annotations

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
    """In-process generation with ``model.generate``: batches of similar length, left padding, stop strings.

    ``chat=True`` wraps each prompt in the tokenizer's chat template.
    """

    def __init__(
        self,
        model_name: str,
        generation: GenerationConfig,
        batch_size: int = 8,
        chat: bool = True,
        model=None,
        tokenizer=None,
        **load_kwargs,
    ):
        super().__init__(model_name, generation)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_name, **load_kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, batch_size)
        self.chat = chat and tokenizer.chat_template is not None

    def render(self, request: Request) -> str:
        """The exact text the model continues."""
        if not self.chat:
            return request.prompt + request.prefill
        messages = messages_for(request, with_prefill=False)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + request.prefill

    def generate(self, requests: list[Request], on_result: ResultCallback) -> None:
        texts = {r.id: self.render(r) for r in requests}
        # Longest first: similar lengths share a batch (less padding), and memory errors show up at once.
        lengths = {i: len(self.tokenizer(t, add_special_tokens=not self.chat).input_ids) for i, t in texts.items()}
        ordered = sorted(requests, key=lambda r: -lengths[r.id])
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            for request, completion in zip(
                batch, self.generate_batch([texts[r.id] for r in batch], [r.id for r in batch]), strict=True
            ):
                completion.text = request.prefill + completion.text
                on_result(completion)

    def generate_batch(self, texts: list[str], ids: list[str]) -> list[Completion]:
        """Continue each text; the new text is cut at the first stop string (``generate`` leaves it in)."""
        import torch

        gen, tok = self.generation, self.tokenizer
        encoded = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat).to(self.model.device)
        kwargs = dict(
            max_new_tokens=gen.max_tokens,
            min_new_tokens=gen.min_tokens or None,
            pad_token_id=tok.pad_token_id,
            do_sample=gen.temperature > 0,
        )
        if gen.temperature > 0:
            kwargs["temperature"] = gen.temperature
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if gen.stop:
            kwargs.update(stop_strings=gen.stop, tokenizer=tok)
        if gen.seed is not None:
            torch.manual_seed(gen.seed)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **kwargs)
        ends = {tok.pad_token_id, tok.eos_token_id, *self.configured_eos()} - {None}
        results = []
        for row_id, tokens, mask in zip(ids, output[:, encoded.input_ids.shape[1] :].tolist(), encoded.attention_mask,
                                        strict=True):
            n_new = next((i for i, t in enumerate(tokens) if t in ends), len(tokens))
            text = cut_at_stop(tok.decode(tokens[:n_new], skip_special_tokens=True), gen.stop)
            results.append(Completion(row_id, text, {"prompt_tokens": int(mask.sum()), "completion_tokens": n_new}))
        return results

    def configured_eos(self) -> list[int]:
        """The model's own end-of-sequence ids (a chat model may end turns with a token other than the tokenizer's)."""
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        return configured if isinstance(configured, list) else [configured]
