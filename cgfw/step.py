"""One CycleGAN training iteration, in the paper's order. Read this file to know what is trained."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from cgfw.model import CycleGAN


def _together(m: CycleGAN, net: nn.Module, *inputs: Tensor) -> Sequence[Tensor]:
    """`net(x)` for each input. Where `net` treats each sample on its own (`m.stacks`) and the
    images share a size, as one call on the inputs stacked along the batch: the same outputs and
    gradients up to rounding, with kernels twice the size, which at batch 1 keep more of a GPU
    busy."""
    if not m.stacks(net) or any(x.shape[1:] != inputs[0].shape[1:] for x in inputs):
        return [net(x) for x in inputs]
    # One memory format for all (the image pool returns contiguous fakes), or cat drops it.
    fmt = m.speed.memory_format
    return net(torch.cat([x.contiguous(memory_format=fmt) for x in inputs])).split(
        [len(x) for x in inputs]
    )


def _translate(
    m: CycleGAN, net: nn.Module, x: Tensor, own: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """`net(x)`, and `net(own)` (the identity image) when it can share the call; None when the
    identity image is off or must wait for its own call."""
    if own is None or not m.stacks(net) or own.shape[1:] != x.shape[1:]:
        return net(x), None
    out, idt = _together(m, net, x, own)
    return out, idt


def _requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def cyclegan_step(m: CycleGAN, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
    """Translate both ways, update both generators, then both discriminators on pooled fakes.

    Returns each weighted loss term, detached (call .item() only when logging: it syncs a GPU).
    """
    w = m.weights
    m.begin_iteration()

    with m.autocast():
        # 1. Translate A -> B and back, then B -> A and back; a reconstruction only where a
        #    cycle term uses it. With the identity loss, a generator also gets an image of its
        #    own target domain, which it should leave alone: in the translation's call if it
        #    may stack, else after the cycles. That is the authors' order of calls, so with
        #    every call apart the step computes what their loop does, bit for bit.
        fake_b, idt_b = _translate(m, m.g_ab, real_a, real_b if w.identity else None)
        rec_a = m.g_ba(fake_b) if w.cycle_forward else None
        fake_a, idt_a = _translate(m, m.g_ba, real_b, real_a if w.identity else None)
        rec_b = m.g_ab(fake_a) if w.cycle_backward else None
        if w.identity:
            idt_b = m.g_ab(real_b) if idt_b is None else idt_b
            idt_a = m.g_ba(real_a) if idt_a is None else idt_a

        # 2. Generator losses, with the discriminators frozen (they only pass gradients through).
        _requires_grad([m.d_a, m.d_b], False)
        terms: dict[str, Tensor] = {}
        if w.gan:
            terms["g_ab_gan"] = w.gan * m.gan_loss(m.d_b(fake_b), True, False)
            terms["g_ba_gan"] = w.gan * m.gan_loss(m.d_a(fake_a), True, False)
        if rec_a is not None:
            terms["cycle_a"] = w.cycle * m.cycle_loss(rec_a, real_a)
        if rec_b is not None:
            terms["cycle_b"] = w.cycle * m.cycle_loss(rec_b, real_b)
        if idt_b is not None and idt_a is not None:
            terms["idt_b"] = w.identity * m.identity_loss(idt_b, real_b)
            terms["idt_a"] = w.identity * m.identity_loss(idt_a, real_a)
        if w.paired:
            # Only with aligned pairs (real_b is real_a's counterpart): the supervised upper bound.
            terms["paired_b"] = w.paired * m.paired_loss(fake_b, real_b)
            terms["paired_a"] = w.paired * m.paired_loss(fake_a, real_a)
    loss_g = sum(terms.values())
    assert isinstance(loss_g, Tensor)
    m.opt_g.zero_grad(set_to_none=True)
    m.optimizer_step(loss_g, m.opt_g)  # both generators jointly
    _requires_grad([m.d_a, m.d_b], True)

    # 3. Discriminators on real images and fakes drawn from the history pools (kept in fp32);
    #    0.5 halves D's learning rate relative to G, as in the paper.
    if w.gan:
        pooled_b = m.pool_b.query(fake_b.detach().float())
        pooled_a = m.pool_a.query(fake_a.detach().float())
        with m.autocast():
            judged_real_b, judged_fake_b = _together(m, m.d_b, real_b, pooled_b)
            judged_real_a, judged_fake_a = _together(m, m.d_a, real_a, pooled_a)
            terms["d_b"] = 0.5 * (
                m.gan_loss(judged_real_b, True, True) + m.gan_loss(judged_fake_b, False, True)
            )
            terms["d_a"] = 0.5 * (
                m.gan_loss(judged_real_a, True, True) + m.gan_loss(judged_fake_a, False, True)
            )
        m.opt_d.zero_grad(set_to_none=True)
        m.optimizer_step(terms["d_a"] + terms["d_b"], m.opt_d)
    m.scaler.update()

    terms["g_total"] = loss_g
    return {name: t.detach() for name, t in terms.items()}
