"""Vector quantisation of the latent tokens (QUANTIZERS)."""
from typing import Dict, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from mmspectral.registry import QUANTIZERS
from mmspectral.utils.checks import check_range


@QUANTIZERS.register_module()
class VectorQuantizer(nn.Module):
    """TiTok's quantiser: nearest code on l2-normalised vectors, straight-through gradients.

    ``loss_commit = commitment_cost * ||sg(q) - z||^2`` pulls the encoder to its codes and
    ``loss_codebook = ||q - sg(z)||^2`` pulls the codes to the encoder (both means over tokens and dims).
    Runs in float32 whatever the autocast state, so distances between unit vectors stay exact.

    Optionally restarts dead codes (off by default, as TiTok): an exponential moving average tracks each
    code's share of the assignments, and a code whose share falls below ``dead_code_threshold / K`` is moved
    onto a randomly chosen encoder output of the current batch (the same on every rank). Small models trained
    briefly need it: at initialisation the encoder's output at a token position hardly depends on the image,
    every image picks the same code there, and nothing reaches the decoder.

    Args:
        codebook_size: K, number of codes.
        token_size: D, dimension of a code.
        commitment_cost: weight of the commitment term (0.25 as VQ-VAE / TiTok).
        use_l2_norm: compare l2-normalised vectors (cosine distance), as TiTok.
        restart_dead_codes: enable the restarts described above.
        usage_decay: decay of the usage average.
        dead_code_threshold: a code is dead below this fraction of the uniform share 1/K.
    """

    def __init__(self, codebook_size: int = 4096, token_size: int = 12, commitment_cost: float = 0.25,
                 use_l2_norm: bool = True, restart_dead_codes: bool = False, usage_decay: float = 0.99,
                 dead_code_threshold: float = 0.03) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.token_size = token_size
        self.commitment_cost = commitment_cost
        self.use_l2_norm = use_l2_norm
        self.restart_dead_codes = restart_dead_codes
        self.usage_decay = usage_decay
        self.dead_code_threshold = dead_code_threshold
        self.embedding = nn.Embedding(codebook_size, token_size)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        if restart_dead_codes:
            # Starts at zero: codes no encoder output chose in the first batch move onto encoder
            # outputs at once.
            self.register_buffer('code_usage', torch.zeros(codebook_size))

    def codebook(self) -> torch.Tensor:
        """(K, D) codes as the decoder sees them (normalised when ``use_l2_norm``)."""
        weight = self.embedding.weight.float()
        return F.normalize(weight, dim=-1) if self.use_l2_norm else weight

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes of ``indices`` (B, N) -> (B, N, D)."""
        check_range(indices, 0, self.codebook_size - 1, f'Token ids must lie in [0, {self.codebook_size})')
        return F.embedding(indices, self.codebook())

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """z: (B, N, D) -> quantised (B, N, D) float32 with straight-through gradient, and a dict with
        ``indices`` (B, N) and the two loss terms."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            if self.use_l2_norm:
                z = F.normalize(z, dim=-1)
            codes = self.codebook()  # (K, D)
            flat = z.reshape(-1, z.shape[-1])  # (B*N, D)
            dist = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1)[None] - 2 * flat @ codes.T
            indices = dist.argmin(dim=1).view(z.shape[:-1])  # (B, N)
            quantized = F.embedding(indices, codes)
            loss_commit = self.commitment_cost * F.mse_loss(z, quantized.detach())
            loss_codebook = F.mse_loss(quantized, z.detach())
            quantized = z + (quantized - z).detach()
            if self.restart_dead_codes and self.training:
                self._restart_dead_codes(flat.detach(), indices)
        return quantized, dict(indices=indices, loss_commit=loss_commit, loss_codebook=loss_codebook)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        share = torch.bincount(indices.reshape(-1), minlength=self.codebook_size).float() / indices.numel()
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.all_reduce(share)
            share /= dist.get_world_size()
        self.code_usage.mul_(self.usage_decay).add_(share, alpha=1 - self.usage_decay)
        dead = (self.code_usage < self.dead_code_threshold / self.codebook_size).nonzero().squeeze(1)
        if dead.numel() == 0:
            return
        pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
        replacement = flat[pick].to(self.embedding.weight.dtype)  # (n_dead, D)
        if distributed:
            dist.broadcast(replacement, src=0)  # every rank takes rank 0's choice
        self.embedding.weight.data[dead] = replacement
        self.code_usage[dead] = 1.0 / self.codebook_size

    @torch.no_grad()
    def usage(self, indices: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Codebook statistics of a batch of ids: share of codes used,
        and perplexity of the code histogram."""
        flat = indices.reshape(-1)
        # scatter_add, not bincount: on a GPU bincount reads the largest id back to the host
        # (a sync per step).
        counts = torch.zeros(self.codebook_size, device=flat.device).scatter_add_(0, flat, torch.ones(
            flat.shape, device=flat.device))
        probs = counts / counts.sum().clamp(min=1)
        entropy = -(probs * torch.log(probs.clamp(min=1e-12))).sum()
        return dict(codebook_usage=(counts > 0).float().mean(), codebook_perplexity=entropy.exp())
