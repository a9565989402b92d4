"""``CheckpointHook``: MMEngine's, with writes ordered so that a run killed at any moment can resume.

It is registered under MMEngine's name, so every config's ``type='CheckpointHook'`` (with
``default_scope='mmspectral'``) gets it; arguments and behaviour are otherwise MMEngine's.
"""
import os.path as osp
import shutil

import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
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
    Arguments: as MMEngine's ``CheckpointHook``, except that it takes no other keyword arguments (MMEngine's
    hands them to ``save_checkpoint``, which already gets every argument it has: a key like ``intervl=2``
    would pass and fail at the first save); the config checks say so before training (``extra_kwargs``).
    A save that fails (a full disk, an unwritable folder) keeps the iterations done: the checkpoint is written
    to the work dir instead if it can be, and the error names the folder, its free space and what to do.
    """

    extra_kwargs: tuple = ()  # the names MMEngine's **kwargs may hold here: none

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

        try:
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
        except NonFiniteLossError:
            raise
        except Exception as exc:
            self._save_failed(runner, ckpt_filename, meta, exc)

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

    def _save_failed(self, runner, filename: str, meta, exc: Exception) -> None:
        """Keep the iterations done if at all possible, then stop with what failed, where, and what to do."""
        folder = str(self.out_dir)
        try:
            usage = shutil.disk_usage(folder if osp.isdir(folder) else runner.work_dir)
            free = f'{usage.free / 2**30:.1f} GiB free'
        except OSError:
            free = 'free space unknown'
        saved = None
        if get_world_size() == 1:  # a second collective save could hang other ranks
            try:  # the plain save: the work dir, no backend or extra arguments
                runner.save_checkpoint(runner.work_dir, filename, save_optimizer=self.save_optimizer,
                                       save_param_scheduler=self.save_param_scheduler, meta=meta,
                                       by_epoch=self.by_epoch)
                saved = osp.join(runner.work_dir, filename)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                saved = None
        kept = (f'The iterations done are saved in {saved}: fix the cause and resume with --resume {saved}.'
                if saved else 'No checkpoint of this iteration could be written. '
                + latest_checkpoint_sentence(runner.work_dir))
        raise RuntimeError(f'Saving the checkpoint {filename} to {folder} failed ({type(exc).__name__}: '
                           f'{exc}; {free} there). {kept} Free space there, or set '
                           'default_hooks.checkpoint.out_dir to a folder that can hold it.') from exc

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a checkpoint whose weights (or EMA weights) are not finite.

        The older checkpoints stay: the outdated one is removed only after a new one is written, so the newest
        checkpoint in the work dir is always a finite one, whatever ``max_keep_ckpts`` says.
        """
        bad = []
        for key in ('state_dict', 'ema_state_dict'):
            bad += [f'{key}.{name}' for name in nonfinite_tensors((checkpoint.get(key) or {}).items())]
        anywhere = len(bad)
        if hasattr(runner, 'strategy') and get_world_size() > 1:  # FlexibleRunner: every rank saves its part
            count = torch.tensor([float(anywhere)])
            all_reduce(count, op='sum')
            anywhere = int(count.item())
        if anywhere:
            bad = bad or ['on another rank']
            raise NonFiniteLossError(
                f'The checkpoint of iteration {checkpoint.get("meta", {}).get("iter", runner.iter)} was not '
                f'written: {len(bad)} of its weight tensors hold NaN or inf (e.g. {", ".join(bad[:3])}). '
                f'{latest_checkpoint_sentence(runner.work_dir)}')
