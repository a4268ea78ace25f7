"""A Hugging Face Trainer run logged with ``report_to="kohakuboard"`` (offline, CPU, seconds).

python examples/hf_trainer_tiny.py [--base-dir ./kohakuboard-data] [--steps 60]

The model is a 2-layer GPT-2 with 16-wide embeddings built from a config in code, trained on
synthetic sequences (each one counts upward from a random start, so the loss falls quickly).
Nothing is downloaded. Note that the training part never imports kohakuboard: the name
``"kohakuboard"`` is known to transformers through the hook the package installs.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

VOCAB = 64
LENGTH = 16


class CountingSequences(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Sequences start, start+1, ... (mod VOCAB): next-token prediction is learnable."""

    def __init__(self, n: int, seed: int) -> None:
        starts = torch.randint(0, VOCAB, (n, 1), generator=torch.Generator().manual_seed(seed))
        self.ids = (starts + torch.arange(LENGTH)) % VOCAB

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-dir", default="./kohakuboard-data", help="folder for boards")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps")
    parser.add_argument("--output-dir", default="./hf-tiny-output", help="Trainer checkpoints")
    args = parser.parse_args()
    # Settings through the environment (or use callbacks=[KohakuBoardCallback(base_dir=...)]).
    os.environ["KOHAKUBOARD_DIR"] = args.base_dir
    os.environ.setdefault("KOHAKUBOARD_HISTOGRAM_STEPS", "10")  # gradient histograms

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    every = max(1, args.steps // 6)
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        run_name="hf-trainer-tiny",
        report_to="kohakuboard",
        max_steps=args.steps,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        learning_rate=3e-3,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=every,
        save_strategy="steps",
        save_steps=args.steps,
        save_only_model=True,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=CountingSequences(512, seed=0),
        eval_dataset=CountingSequences(64, seed=1),
    )
    trainer.train()
    trainer.evaluate()  # after training: appended to the same board

    # Only to say where the board went; training needed no kohakuboard import.
    from kohakuboard import list_boards

    path = list_boards(args.base_dir)[-1].path
    print(f"board: {path}")
    print(f"look at it: kobo show {path}    or    kobo open {os.path.abspath(args.base_dir)}")


if __name__ == "__main__":
    main()
