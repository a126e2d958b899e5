"""How every trainer starts and ends a run: what it is, the finished run it returns, the atomic save.

A run is known by the model it starts from (its label on the card) and a fingerprint of (data, settings,
that model); it writes one model folder (``output_dir``) and, while it trains, one resumable checkpoint
beside it (:class:`RunTarget`). A re-run that finds its own finished folder (a crash after the rename,
before the job was marked done) returns that folder's result instead of training again
(:meth:`RunTarget.finished`). At the end :func:`save_run` writes the folder aside with its card, renames it
into place and drops the checkpoint; :func:`save_merged_policy` does so for a policy whose LoRA adapters
are merged into its weights first.

    target = RunTarget.on_examples(examples, config, model_label(config.policy, policy), output_dir, None)
    if (finished := target.finished(TrainResult, reporter)) is not None:
        return finished
    ...
    card = target.card("dpo", config, data, metrics, loop_result)
    save_run(accelerator, reporter, target, card, lambda folder: save_model(model, tokenizer, folder), "saved")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from app.training.core.card import build_card, default_checkpoint_path, finished_card, run_fingerprint, write_card
from app.training.core.checkpoint import atomic_write_dir
from app.training.core.config import StoredConfig
from app.training.core.loop import LoopResult, Reporter
from app.training.core.lora import ADAPTER_DIR, adapter_writer, merge_adapters
from app.training.core.model_card import write_model_card
from app.training.core.result import TrainResult

ResultT = TypeVar("ResultT", bound=TrainResult[Any])


def model_label(name: str, model: nn.Module | None) -> str:
    """How a card names the model a run starts from: ``name`` (its folder or hub id), or
    ``in-memory:<model type>`` for a model passed in as an object."""
    if model is None:
        return name
    return f"in-memory:{getattr(getattr(model, 'config', None), 'model_type', type(model).__name__)}"


@dataclass(frozen=True)
class RunTarget:
    """What a run is and where it writes: the starting model's label, the fingerprint that a checkpoint or
    a folder must carry to be this run's, the model folder and the resumable checkpoint."""

    label: str  # how the card names the starting model (``model_label``)
    fingerprint: str  # data + settings + starting model
    output_dir: Path
    checkpoint: Path

    @classmethod
    def of(cls, label: str, fingerprint: str, output_dir: Path | str, checkpoint_path: Path | str | None) -> RunTarget:
        """The checkpoint defaults to a hidden file beside the output folder."""
        output_dir = Path(output_dir)
        checkpoint = Path(checkpoint_path) if checkpoint_path else default_checkpoint_path(output_dir)
        return cls(label, fingerprint, output_dir, checkpoint)

    @classmethod
    def on_examples(
        cls,
        examples: Sequence[Any],
        config: StoredConfig,
        label: str,
        output_dir: Path | str,
        checkpoint_path: Path | str | None,
    ) -> RunTarget:
        """A run on judged examples, fingerprinted by their ids, the settings and the starting model."""
        return cls.of(label, run_fingerprint(examples, config, label), output_dir, checkpoint_path)

    def finished(self, result_cls: type[ResultT], reporter: Reporter | None = None) -> ResultT | None:
        """The result of this very run when its folder is already saved (told to ``reporter``, if any), else None.

        Raises ``FileExistsError`` when the folder holds another run: a finished model is never overwritten."""
        card = finished_card(self.output_dir, self.fingerprint)
        if card is None:
            return None
        if reporter is not None:
            reporter.log(f"{self.output_dir} already holds this run; returning its card")
        return result_cls.from_card(self.output_dir, card)

    def card(
        self,
        kind: str,
        config: StoredConfig,
        data: dict[str, Any],
        metrics: dict[str, float],
        loop: LoopResult,
        labels: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The card of this run trained through the shared loop (``run_loop``), which counted its steps."""
        return build_card(
            kind=kind,
            backbone=self.label,
            labels=labels,
            config=config,
            data=data,
            fingerprint=self.fingerprint,
            metrics=metrics,
            steps=loop.steps,
            resumed_from=loop.resumed_from,
        )


def save_run(
    accelerator: Any,
    reporter: Reporter,
    target: RunTarget,
    card: dict[str, Any],
    write: Callable[[Path], None],
    message: str,
) -> None:
    """On the main process: ``write`` the model into a folder beside ``target.output_dir``, add the card (and
    the Hub's model card, README.md), rename the folder into place, drop the checkpoint and log ``message``;
    every process then waits for it."""
    if accelerator.is_main_process:
        with atomic_write_dir(target.output_dir) as tmp:
            write(tmp)
            write_card(tmp, card)
            write_model_card(tmp, card, name=target.output_dir.name)
        target.checkpoint.unlink(missing_ok=True)
        reporter.log(message)
        reporter.progress(1.0, "done")
    accelerator.wait_for_everyone()


def save_policy(model: nn.Module, tokenizer: Any, folder: Path) -> None:
    """An ordinary Hugging Face checkpoint: weights, config, tokenizer and a generation config whose pad
    and EOS tokens are the tokenizer's, and that samples: a server taking its defaults from the checkpoint
    (``transformers serve``) honours a request's temperature only when ``do_sample`` is on."""
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.pad_token_id = tokenizer.pad_token_id
        generation.eos_token_id = tokenizer.eos_token_id
        generation.do_sample = True
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def save_merged_policy(
    accelerator: Any,
    reporter: Reporter,
    lm: nn.Module,
    tokenizer: Any,
    target: RunTarget,
    card: dict[str, Any],
    after: str,
) -> nn.Module | None:
    """Merge the adapters of the trained ``lm`` into its weights and save it with the tokenizer and the card
    (:func:`save_run`, logging "saved the new policy to … after <after>"), the adapters alone beside it in
    ``adapter/``. Returns the merged policy on the main process, None elsewhere (where nothing is merged)."""
    adapter = adapter_writer(lm) if accelerator.is_main_process else None
    model = merge_adapters(lm).eval() if accelerator.is_main_process else None

    def write(folder: Path) -> None:
        save_policy(model, tokenizer, folder)
        if adapter is not None:
            adapter(folder / ADAPTER_DIR)

    save_run(accelerator, reporter, target, card, write, f"saved the new policy to {target.output_dir} after {after}")
    return model
