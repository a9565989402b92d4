"""``CheckpointHook``: MMEngine's, with writes ordered so that a run killed at any moment can resume.

It is registered under MMEngine's name, so every config's ``type='CheckpointHook'`` (with
``default_scope='mmspectral'``) gets it; arguments and behaviour are otherwise MMEngine's.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook

from mmspectral.registry import HOOKS
from ..checkpoint import atomic_write_path
from .nonfinite_loss_hook import NonFiniteLossError, latest_checkpoint_sentence, nonfinite_tensors

__all__ = ['CheckpointHook']


@HOOKS.register_module()
class CheckpointHook(MMEngineCheckpointHook):
    """MMEngine's CheckpointHook with a kill-safe order of writes.

    MMEngine removes the oldest checkpoint beyond ``max_keep_ckpts`` before writing the new one, and rewrites
    ``last_checkpoint`` in place: a run killed while saving could be left with one checkpoint fewer than asked
    for (none at all with ``max_keep_ckpts=1``) and an empty record. Here, in order:

    1. the new checkpoint is written (``SpectralRunner.save_checkpoint``: a temporary file, then a rename);
    2. ``last_checkpoint`` is replaced the same way;
    3. only then is the outdated checkpoint removed.

    At every moment the work dir holds a complete checkpoint and a record naming a complete checkpoint.
    Arguments: as MMEngine's ``CheckpointHook``.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = None
        # _save_checkpoint and _save_best_checkpoint may both save at one step.
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        # Model-parallel training pulls sharded states from every rank into save_checkpoint; the files are
        # rank 0's business.
        if not is_main_process():
            return

        with atomic_write_path(osp.join(runner.work_dir, 'last_checkpoint')) as tmp:
            with open(tmp, 'w') as f:
                f.write(self.last_ckpt)

        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are directories
                self.file_backend.rmtree(path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a checkpoint whose weights (or EMA weights) are not finite.

        The older checkpoints stay: the outdated one is removed only after a new one is written, so the newest
        checkpoint in the work dir is always a finite one, whatever ``max_keep_ckpts`` says.
        """
        bad = []
        for key in ('state_dict', 'ema_state_dict'):
            bad += [f'{key}.{name}' for name in nonfinite_tensors((checkpoint.get(key) or {}).items())]
        if bad:
            raise NonFiniteLossError(
                f'The checkpoint of iteration {checkpoint.get("meta", {}).get("iter", runner.iter)} was not '
                f'written: {len(bad)} of its weight tensors hold NaN or inf (e.g. {", ".join(bad[:3])}). '
                f'{latest_checkpoint_sentence(runner.work_dir)}')
