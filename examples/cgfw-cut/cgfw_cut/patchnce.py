"""PatchNCE (Park et al. 2020): a patch of the output should match the input's patch at the
same place, against the input's other patches, in the generator's own encoder features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PatchHead(nn.Module):
    """The MLP head (CUT's netF, mlp_sample): per encoder layer, a two-layer MLP of `units`
    units on sampled feature vectors, then L2 normalisation. Its input sizes are the encoder's
    channels, so it is built from a first batch's features (`build`)."""

    def __init__(self, units: int = 256) -> None:
        super().__init__()
        self.units = units
        self.mlps = nn.ModuleList()

    def build(self, feats: list[Tensor]) -> PatchHead:
        for feat in feats:
            self.mlps.append(
                nn.Sequential(
                    nn.Linear(feat.shape[1], self.units),
                    nn.ReLU(),
                    nn.Linear(self.units, self.units),
                )
            )
        return self

    def forward(
        self, feats: list[Tensor], num_patches: int, patch_ids: list[Tensor] | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Each layer's (N * patches, units) vectors, and the patch indices drawn (reused for
        the output's features, so both sides sample the same places)."""
        samples, ids = [], []
        for i, (feat, mlp) in enumerate(zip(feats, self.mlps, strict=True)):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (N, H * W, C)
            if patch_ids is None:
                # torch's generator on the CPU: seeded by the run, and the same in a resume.
                order = torch.randperm(flat.shape[1])[: min(num_patches, flat.shape[1])]
                chosen = order.to(feat.device)
            else:
                chosen = patch_ids[i]
            x = mlp(flat[:, chosen, :].flatten(0, 1))
            # x / (|x| + 1e-7) as the official code, but with torch's norm, whose gradient at
            # a zero vector is zero rather than the NaN of sqrt(sum(x ** 2)) (a ReLU MLP gives
            # zero vectors on flat image regions; the official code would stop there).
            samples.append(x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-7))
            ids.append(chosen)
        return samples, ids


def patch_nce(feat_q: Tensor, feat_k: Tensor, batch: int, temperature: float) -> Tensor:
    """Per-patch cross-entropy: each output patch (q) against its input patch (k, positive) and
    the other patches of the same image (negatives; the diagonal masked out with -10)."""
    patches, dim = feat_q.shape
    feat_k = feat_k.detach()
    positive = (feat_q * feat_k).sum(1, keepdim=True)  # (P, 1)
    q = feat_q.view(batch, -1, dim)
    k = feat_k.view(batch, -1, dim)
    per_image = q.shape[1]
    negative = torch.bmm(q, k.transpose(2, 1))
    eye = torch.eye(per_image, device=feat_q.device, dtype=torch.bool)[None]
    negative = negative.masked_fill(eye, -10.0).view(-1, per_image)
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(patches, dtype=torch.long, device=feat_q.device)
    return F.cross_entropy(logits, target, reduction="none")
