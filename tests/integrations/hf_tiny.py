"""A tiny transformers setup for tests: a randomly initialised 2-layer BERT (hidden size 16)
built from a config in code, a synthetic dataset and CPU-only arguments. Nothing is downloaded.

Also used by scripts run in fresh interpreters (``python hf_tiny.py`` is not a thing; scripts
import it after putting this folder on ``sys.path``)."""

from __future__ import annotations

import os
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments  # noqa: E402

VOCAB = 40
SEQ = 8


def tiny_model(seed: int = 0) -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=SEQ,
    )
    config.num_labels = 2
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


class TinyDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """``n`` random token sequences; the label is the parity of the first token."""

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": int(self.ids[i, 0]) % 2}


def tiny_args(output_dir: str | os.PathLike[str], **overrides: Any) -> TrainingArguments:
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=4,
        logging_steps=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=16,
        learning_rate=1e-3,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)
